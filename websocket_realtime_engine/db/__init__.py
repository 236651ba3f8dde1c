"""The durable record: SQLAlchemy models (tables prefixed ``realtime_``) and the write-behind recorder."""
