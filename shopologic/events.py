"""Shop event payloads and their validation.

Every order and product hook call is checked against these schemas before any implementation runs
(see :func:`validate_hook_call`), so a plugin emitting a malformed event gets an
:class:`InvalidEventError` naming the field, and no implementation sees bad data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
ID = validate.Length(min=1, max=64)
# payloads are published as JSON, which carries integers of 64 bits at most
STOCK = validate.Range(min=0, max=2**63 - 1)


class InvalidEventError(ValueError):
    """A shop event's payload does not validate; ``errors`` maps field paths to messages."""

    def __init__(self, hook_name: str, errors: Mapping[str, Any]) -> None:
        self.hook_name = hook_name
        self.errors = dict(errors)
        super().__init__(f"invalid {hook_name} event: {self.errors}")


class StringId(fields.String):
    """An identifier given as a string or an integer, kept as a string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return str(super()._deserialize(value, attr, data, **kwargs))


AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")  # digits, a point, at most six decimals: no sign, no exponent


class Money(fields.Field):
    """A non-negative amount of money, kept exactly as given: a decimal string (``"19.90"``), an
    integer, or a JSON number (its shortest form, ``19.9``). Never rounded: the schema refuses more
    decimals than the currency has (:func:`check_decimals`)."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": 'not an amount: give a decimal string such as "19.90" (digits and at most one point)',
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.make_error("invalid")
        text = repr(value) if isinstance(value, float) else str(value)
        if not AMOUNT.fullmatch(text):
            raise self.make_error("invalid")
        return text


def decimals_allowed(currency: str) -> int:
    """How many decimals the currency's amounts may have (ISO 4217 through CLDR: EUR 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))


def check_decimals(amounts: Mapping[str, Any], currency: str) -> None:
    """Refuse each amount (by field path) with more decimals than ``currency`` allows: never rounded."""
    allowed = decimals_allowed(currency)
    errors = {
        path: [f"{amount} has more decimals than {currency} allows ({allowed}); amounts are never rounded"]
        for path, amount in amounts.items()
        if isinstance(amount, str) and len(amount.partition(".")[2]) > allowed
    }
    if errors:
        raise ValidationError(errors)


class AddressSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(validate=validate.Length(max=200))
    line1 = fields.String(validate=validate.Length(max=200))
    line2 = fields.String(validate=validate.Length(max=200))
    city = fields.String(validate=validate.Length(max=100))
    postcode = fields.String(validate=validate.Length(max=20))
    country = fields.String(validate=validate.Length(equal=2))


class OrderItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    product_id = StringId(required=True, validate=ID)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))
    price = Money(required=True)


class OrderSchema(Schema):
    """An order. ``customer_id``, ``email`` and ``shipping_address`` are personal data."""

    class Meta:
        unknown = EXCLUDE

    id = StringId(required=True, validate=ID)
    number = fields.String(validate=validate.Length(max=64))
    customer_id = StringId(allow_none=True, validate=ID, load_default=None)
    email = fields.Email(allow_none=True, load_default=None)
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    total = Money(required=True)
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    items = fields.List(fields.Nested(OrderItemSchema), load_default=list, validate=validate.Length(max=1000))
    shipping_address = fields.Nested(AddressSchema, allow_none=True, load_default=None)
    created_at = fields.DateTime(allow_none=True, load_default=None, format="iso")
    updated_at = fields.DateTime(allow_none=True, load_default=None, format="iso")

    @validates_schema
    def _amounts_fit_the_currency(self, order: dict[str, Any], **kwargs: Any) -> None:
        amounts = {"total": order.get("total")}
        for number, item in enumerate(order.get("items") or ()):
            amounts[f"items.{number}.price"] = item.get("price")
        check_decimals(amounts, order.get("currency", "EUR"))


class ProductSchema(Schema):
    """A product of the catalogue."""

    class Meta:
        unknown = EXCLUDE

    id = StringId(required=True, validate=ID)
    sku = fields.String(validate=validate.Length(max=64), load_default=None, allow_none=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    price = Money(required=True)
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    stock = fields.Integer(strict=True, validate=STOCK)

    @validates_schema
    def _price_fits_the_currency(self, product: dict[str, Any], **kwargs: Any) -> None:
        check_decimals({"price": product.get("price")}, product.get("currency", "EUR"))


def _changes() -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list)


def _call_schema(name: str, **extra: fields.Field) -> type[Schema]:
    return Schema.from_dict(extra, name=name)


class ProductPriceChanged(Schema):
    product = fields.Nested(ProductSchema, required=True)
    previous_price = Money(required=True)

    @validates_schema
    def _previous_price_fits_the_currency(self, call: dict[str, Any], **kwargs: Any) -> None:
        currency = (call.get("product") or {}).get("currency", "EUR")
        check_decimals({"previous_price": call.get("previous_price")}, currency)


HOOK_SCHEMAS: dict[str, type[Schema]] = {
    "order_created": _call_schema("OrderCreated", order=fields.Nested(OrderSchema, required=True)),
    "order_updated": _call_schema("OrderUpdated", order=fields.Nested(OrderSchema, required=True), changes=_changes()),
    "order_status_changed": _call_schema(
        "OrderStatusChanged",
        order=fields.Nested(OrderSchema, required=True),
        previous_status=fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES)),
    ),
    "order_cancelled": _call_schema(
        "OrderCancelled",
        order=fields.Nested(OrderSchema, required=True),
        reason=fields.String(load_default="", validate=validate.Length(max=500)),
    ),
    "product_created": _call_schema("ProductCreated", product=fields.Nested(ProductSchema, required=True)),
    "product_updated": _call_schema(
        "ProductUpdated", product=fields.Nested(ProductSchema, required=True), changes=_changes()
    ),
    "product_stock_changed": _call_schema(
        "ProductStockChanged",
        product=fields.Nested(ProductSchema, required=True),
        previous_stock=fields.Integer(required=True, strict=True, validate=STOCK),
    ),
    "product_price_changed": ProductPriceChanged,
}

# The event names ``emit`` and the docs use, mapped to their hooks.
EVENT_HOOKS: dict[str, str] = {
    "order.created": "order_created",
    "order.updated": "order_updated",
    "order.status_changed": "order_status_changed",
    "order.cancelled": "order_cancelled",
    "product.created": "product_created",
    "product.updated": "product_updated",
    "product.stock_changed": "product_stock_changed",
    "product.price_changed": "product_price_changed",
}


def _jsonable(value: Any) -> Any:
    """Dates become ISO strings and amounts decimal strings, so payloads can be broadcast as they are."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def validate_event(hook_name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one hook call's keyword arguments; return them cleaned, or raise InvalidEventError."""
    schema = HOOK_SCHEMAS[hook_name]()
    try:
        loaded = schema.load(dict(kwargs))
    except ValidationError as exc:
        raise InvalidEventError(hook_name, exc.normalized_messages()) from None
    cleaned: dict[str, Any] = _jsonable(loaded)
    return cleaned


def validate_hook_call(hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """pluggy ``before`` monitor: validate shop events in place, before any implementation runs.

    pluggy hands the monitor the very dict the implementations will be called with, so replacing
    its contents hands them the cleaned payload.
    """
    if hook_name in HOOK_SCHEMAS and isinstance(kwargs, dict):
        cleaned = validate_event(hook_name, kwargs)
        kwargs.clear()
        kwargs.update(cleaned)
