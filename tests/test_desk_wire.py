"""Header lines serialised once for many requests are refused whole if a field could
end a line: nothing a header value holds may start a header or a request of its own."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from sidecar.desk_wire import HeadBlock, UnsendableRequest


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-TicketLog-Name", "Eve\r\nX-TicketLog-User: admin"),
        ("X-TicketLog-Name", "Eve\nX-TicketLog-User: admin"),
        ("X-TicketLog-Name", "Eve\rX"),
        ("X-TicketLog-Name", "Eve\0"),
        ("X-TicketLog-User\r\nX-Injected", "yes"),
    ],
)
def test_a_field_that_could_end_a_line_is_refused(name: str, value: str) -> None:
    with pytest.raises(UnsendableRequest):
        HeadBlock.of(CIMultiDict({"X-TicketLog-User": "oid.tid", name: value}))


def test_fields_are_serialised_as_header_lines_in_their_order_then_the_heads_end() -> None:
    fields = CIMultiDict({"X-TicketLog-User": "oid.tid", "X-TicketLog-Name": "Ünïcode"})
    assert HeadBlock.of(fields).closing == (
        "X-TicketLog-User: oid.tid\r\nX-TicketLog-Name: Ünïcode\r\n\r\n".encode()
    )
