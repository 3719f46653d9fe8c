"""The time series' reduction in Python (FerretDB lacks `$avg`/`$min`/`$max`): plain functions."""

from datetime import UTC, datetime, timedelta

from api.timeseries import collect, parse_interval, reduce_rows

T = datetime(2026, 11, 24, 10, 0, 7, tzinfo=UTC)


def test_intervals_read_as_grafana_writes_them():
    assert parse_interval("500ms") == timedelta(milliseconds=500)
    assert parse_interval("10s") == timedelta(seconds=10) and parse_interval("1w") == timedelta(weeks=1)
    assert [parse_interval(text) for text in ("0s", "10", "1.5s", "-1m", "1 m", "$gt", "9999999999s")] == [None] * 7


def test_only_numbers_are_plotted_and_the_rest_counted():
    series = collect([(T, 1), (T, 2.5), (T, True), (T, "3"), (T, float("nan")), (T, None), (T, [1]), (T, 10**20)])
    assert [value for _, value in series.rows] == [1, 2.5, 10**20]
    assert (series.skipped, series.missing, series.read) == (4, 1, 8)


def test_each_interval_from_the_epoch_gives_one_row_at_its_start():
    rows = [(T + timedelta(seconds=s), v) for s, v in ((0, 1), (2, 3), (3, 5), (25, 7))]
    # at 10:00:07, :09, :10 and :32
    assert reduce_rows(rows, timedelta(seconds=10), "mean") == [
        (datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC), 2),
        (datetime(2026, 11, 24, 10, 0, 10, tzinfo=UTC), 5),
        (datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC), 7),
    ]
    assert [value for _, value in reduce_rows(rows, timedelta(seconds=10), "count")] == [2, 1, 1]
    assert [value for _, value in reduce_rows(rows, timedelta(minutes=1), "max")] == [7]
    assert [value for _, value in reduce_rows(rows, timedelta(minutes=1), "min")] == [1]
