"""Numbers as users write them on the command line: ``0.1``, ``8/255``, ``1e-3``, lists ``0.1,8/255``."""

from __future__ import annotations

import math

from .errors import SpecError


def parse_number(text: str | float, what: str = "value") -> float:
    """A finite number written as a decimal or a fraction (``8/255``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        num, sep, den = str(text).strip().partition("/")
        try:
            value = float(num) / float(den) if sep else float(num)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise SpecError(f"{what} {text!r} is not a number", f"e.g. {what} 0.1 or {what} 8/255") from None
    if not math.isfinite(value):
        raise SpecError(f"{what} {text!r} is not a finite number", f"e.g. {what} 0.1 or {what} 8/255")
    return value


def parse_numbers(text: str | None, what: str, *, unique: bool = False) -> list[float] | None:
    """``"0.1,8/255"`` -> [0.1, 0.0314]; None stays None. Repeated values refused when ``unique``."""
    if text is None:
        return None
    values = [parse_number(v, what) for v in str(text).split(",") if v.strip()]
    if not values:
        raise SpecError(f"{what} {text!r} holds no numbers", f"e.g. {what} 0.1,0.2")
    if unique:
        from .limits import distinct  # the one check for repeated values (and list length)

        distinct(values, what)
    return values


__all__ = ["parse_number", "parse_numbers"]
