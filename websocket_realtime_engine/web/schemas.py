"""marshmallow schemas of the REST API's request bodies (the contract is openapi.yaml)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from websocket_realtime_engine.errors import ChannelError
from websocket_realtime_engine.idempotency.base import MAX_KEY_LENGTH
from websocket_realtime_engine.protocol.channels import check_name

# \Z, not $: "$" also matches before a trailing newline
CONNECTION_ID = validate.Regexp(r"^\d{1,20}\.\d{1,20}\Z", error="must be a connection id like 123.456")


class ChannelName(fields.String):
    """A channel name checked by the protocol's rules."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return check_name(text)
        except ChannelError as exc:
            raise ValidationError(exc.message) from None


class BroadcastSchema(Schema):
    """``POST /api/v1/broadcast``: one channel or a list, an event name, any JSON data."""

    channel = ChannelName()
    channels = fields.List(ChannelName(), validate=validate.Length(min=1))
    event = fields.String(required=True, validate=validate.Length(min=1))
    data = fields.Raw(required=True, allow_none=True)
    # attribute name differs from the key: ``Schema.exclude`` is marshmallow's own
    excluded_connection = fields.String(data_key="exclude", validate=CONNECTION_ID, allow_none=True, load_default=None)
    # a retry with the same key within REALTIME_IDEMPOTENCY_TTL is not published again
    idempotency_key = fields.String(
        validate=validate.Length(min=1, max=MAX_KEY_LENGTH), allow_none=True, load_default=None
    )

    def __init__(self, max_channels: int, max_event_name_length: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_channels = max_channels
        self.max_event_name_length = max_event_name_length

    @validates_schema
    def one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("channel" in data) == ("channels" in data):
            raise ValidationError("give exactly one of channel or channels", "channel")
        if len(data.get("channels", ())) > self.max_channels:
            raise ValidationError(f"at most {self.max_channels} channels", "channels")
        if len(data.get("event", "")) > self.max_event_name_length:
            raise ValidationError(f"longer than {self.max_event_name_length} characters", "event")


class NamedUserSchema(Schema):
    """A user the shop's backend names for the host to check: ``{"id", "role"?, "info"?}``."""

    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    role = fields.String(load_default="customer", validate=validate.OneOf(("customer", "admin")))
    info = fields.Dict(load_default=dict)


class AuthenticateSchema(Schema):
    """``POST /api/v1/authenticate`` (JSON, or Pusher's form fields ``socket_id``/``channel_name``)."""

    connection_id = fields.String(required=True, validate=CONNECTION_ID)
    channel = ChannelName(required=True)
    channel_data = fields.String(validate=validate.Length(max=4096), load_default=None, allow_none=True)
    user = fields.Nested(NamedUserSchema, load_default=None, allow_none=True)


class UserAuthenticateSchema(Schema):
    """``POST /api/v1/authenticate/user``: sign a user in on a connection."""

    connection_id = fields.String(required=True, validate=CONNECTION_ID)
    user_data = fields.Dict(load_default=None, allow_none=True)
