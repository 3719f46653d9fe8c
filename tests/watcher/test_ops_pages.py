"""The watcher's pages as a physicist on shift reads them: a dead letter's bytes as text or hex,
dead letters by route and reason."""

import html

from watcher import store
from watcher.display import hex_dump, shown_bytes

from .conftest import wait_for

BINARY = b"\xff\xfe\x00\x01garbage\x80"
SCRIPT = b'<script>alert("x")</script>'


def test_bytes_are_text_when_utf8_and_a_hex_dump_otherwise():
    assert shown_bytes("énergie 3 J".encode()).kind == "text"
    assert shown_bytes("énergie 3 J".encode()).text == "énergie 3 J"
    shown = shown_bytes(BINARY)
    assert shown.kind == "hex" and shown.size == len(BINARY)
    assert shown.text == "00000000  ff fe 00 01 67 61 72 62 61 67 65 80" + " " * 14 + "|....garbage.|"
    assert shown_bytes(None).kind == "none"


def test_a_cut_inside_a_character_is_still_text():
    data = "é".encode() * 10  # 2 bytes each: a cut at 5 bytes splits the third
    shown = shown_bytes(data, limit=5)
    assert shown.kind == "text" and shown.text == "éé" and shown.cut


def test_hex_dump_lines_hold_16_bytes_with_their_offsets():
    lines = hex_dump(bytes(range(40))).splitlines()
    assert [line[:8] for line in lines] == ["00000000", "00000010", "00000020"]
    assert lines[1].startswith("00000010  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f  |")


def test_dead_letters_page_shows_bytes_as_text_or_hex_and_filters_by_route_and_reason(
    routes, run_watcher, make_topic, producer, mongo_db, admin_client
):
    first, second = make_topic(partitions=1), make_topic(partitions=1)
    routes(first, "diag_a", name="diag-a")
    routes(second, "diag_b", name="diag-b")
    producer.send(first, BINARY, key=b"\x00\xff", headers=[("origin", b"daq-7")])
    producer.send(first, SCRIPT)
    producer.send(second, b"{not json")
    producer.flush()
    run_watcher()
    wait_for(lambda: store.dead_letter_count() == 3, message="3 dead letters")

    page = admin_client.get("/watcher/dead-letters/").content.decode()
    assert "b&#x27;" not in page and "\\x" not in page  # never Python's bytes notation
    assert "ff fe 00 01 67 61 72 62 61 67 65 80" in page and "as hex (not UTF-8)" in page
    assert html.escape(SCRIPT.decode()) in page and "<script>alert" not in page
    assert "00 ff" in page and "daq-7" in page  # key and header
    assert "3 dead letters" in page

    by_route = admin_client.get("/watcher/dead-letters/", {"route": "diag-b"}).content.decode()
    assert "1 dead letter match (of 3)" in by_route and "{not json" in by_route and "garbage" not in by_route
    assert "manage.py dead_letters replay --route diag-b" in by_route

    by_reason = admin_client.get("/watcher/dead-letters/", {"reason": "UTF-8 AT"}).content.decode()
    assert "1 dead letter match (of 3)" in by_reason and "garbage" in by_reason and "{not json" not in by_reason
    assert "--reason &#x27;UTF-8 AT&#x27;" in by_reason


def test_dead_letter_filters_are_plain_values_never_operators(mongo_db, admin_client):
    for params in ({"reason": ".*"}, {"reason": "$where"}, {"route[$ne]": "x"}, {"route": '{"$ne": 1}'}):
        response = admin_client.get("/watcher/dead-letters/", params)
        assert response.status_code == 200
    store.add_dead_letters([{"_id": "t|0|1", "route": "r", "error": "not valid JSON", "at": None, "raw": None}])
    assert store.dead_letter_count(reason=".*") == 0 and store.dead_letter_count(reason="valid json") == 1
