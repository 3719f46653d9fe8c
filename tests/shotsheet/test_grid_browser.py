"""The sheet's data grid and its plot in Chromium: a layout kept per user, virtual scrolling to the
last of 100,000 rows, live rows, a plot point that selects its row, and the grid on a phone."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model

from shotsheet import schema
from shotsheet.entries import create_entry
from shotsheet.models import Field, GridLayout, Sheet
from tests.browser import BrowserTestCase, wait_until
from tests.shotsheet.bulk import insert_many_entries

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


def big_sheet_entries(sheet: Sheet, count: int) -> None:
    insert_many_entries(sheet, schema.save_version(sheet).number, count, lambda n: {"energy": (n * 7919 % 1000) / 10})


class GridInTheBrowser(BrowserTestCase):
    def setUp(self):
        self.user = get_user_model().objects.create_superuser("marie", "m@example.org", "grid-pass-123")
        self.sheet = Sheet.objects.create(name="Grid sheet", slug="grid", experiment="GRD")
        for position, (key, label, unit) in enumerate([("energy", "Energy", "J"), ("pressure", "Pressure", "mbar")]):
            Field.objects.create(
                sheet=self.sheet, key=key, label=label, unit=unit, type=Field.Type.FLOAT, position=position
            )
        Field.objects.create(sheet=self.sheet, key="note", label="Note", type=Field.Type.TEXT, position=2)
        self.version = schema.save_version(self.sheet)

    def page(self, width: int = 1400, height: int = 900):
        page = self.browser.new_context(viewport={"width": width, "height": height}).new_page()
        self.log_in(page, "marie", "grid-pass-123")
        return page

    def open_grid(self, page, slug: str = "grid", query: str = ""):
        page.goto(f"{self.live_server_url}/sheets/{slug}/{query}")
        page.wait_for_selector("#grid[data-loaded]")
        page.wait_for_selector("#live-state:has-text('live')")

    def entry(self, **values) -> dict:
        """Saved in a thread of its own: this thread runs Playwright's event loop, where the channel
        layer's async_to_sync cannot send the live row."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(
                lambda: create_entry(
                    self.sheet, self.version, values, author="marie", shot_key=values.pop("shot_key", None)
                )
            ).result()

    def headers(self, page) -> list[str]:
        return [
            title.strip()
            for title in page.locator("#grid .tabulator-col:visible .tabulator-col-title").all_inner_texts()
        ]

    def test_hidden_and_moved_columns_are_kept_for_the_user_across_a_reload(self):
        self.entry(energy=1.5, pressure=3.0, note="first", shot_key="GRD-20261202-000001")
        page = self.page()
        self.open_grid(page)
        assert [h.split(" ")[0] for h in self.headers(page)][:5] == ["shot", "created", "Energy", "Pressure", "Note"]
        assert "Energy [J] ↕" in self.headers(page)  # units in the header, and its sort link

        page.click("#column-chooser summary")
        page.uncheck("#column-list input[data-column=note]")
        wait_until(lambda: page.evaluate("document.getElementById('grid').dataset.layoutSaved") == "yes")
        source = page.locator("#grid .tabulator-col.col-pressure").bounding_box()
        target = page.locator("#grid .tabulator-col.col-created").bounding_box()
        page.mouse.move(source["x"] + 10, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(target["x"] + 20, target["y"] + target["height"] / 2, steps=15)
        page.mouse.move(target["x"] + 5, target["y"] + target["height"] / 2, steps=5)
        page.mouse.up()
        wait_until(lambda: [c["field"] for c in self.saved_columns()][:3] == ["shot_key", "pressure", "created"])
        compact = page.locator("#grid .tabulator-row").first.bounding_box()["height"]
        page.click("label[for=density-comfortable]")
        wait_until(lambda: self.saved_density() == "comfortable")
        assert page.locator("#grid .tabulator-row").first.bounding_box()["height"] > compact + 8

        page.reload()
        page.wait_for_selector("#grid[data-loaded]")
        shown = [h.split(" ")[0] for h in self.headers(page)]
        assert shown[:4] == ["shot", "Pressure", "created", "Energy"] and "Note" not in shown, shown
        assert page.locator("#grid .tabulator-row .tabulator-cell.col-pressure").first.inner_text() == "3.0"
        assert page.is_checked("#density-comfortable") and "grid-comfortable" in page.get_attribute("#grid", "class")

        other = get_user_model().objects.create_user("emmy", password="grid-pass-456")
        assert GridLayout.objects.filter(user=other).count() == 0  # per user: others keep the sheet's order

    def test_a_field_added_after_the_layout_was_kept_shows_beside_its_neighbour(self):
        self.entry(energy=1.5, pressure=3.0, note="first")
        columns = [
            {"field": f, "visible": True, "width": None}
            for f in ("shot_key", "note", "created", "energy", "author", "comment")
        ]
        GridLayout.objects.create(user=self.user, sheet=self.sheet, columns=columns)  # before Pressure was there
        page = self.page()
        self.open_grid(page)
        shown = [h.split(" ")[0] for h in self.headers(page)]
        assert shown == ["shot", "Note", "created", "Energy", "Pressure", "author", "comment"], shown

    def saved_layout(self) -> GridLayout | None:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: GridLayout.objects.filter(user=self.user, sheet=self.sheet).first()).result()

    def saved_columns(self) -> list[dict]:
        layout = self.saved_layout()
        return layout.columns if layout else []

    def saved_density(self) -> str:
        layout = self.saved_layout()
        return layout.density if layout else ""

    def test_the_grid_scrolls_to_the_last_of_100000_rows(self):
        big = Sheet.objects.create(name="Big sheet", slug="big", experiment="BIG")
        Field.objects.create(sheet=big, key="energy", label="Energy", unit="J", type=Field.Type.FLOAT)
        big_sheet_entries(big, 100_000)
        page = self.page()
        page.goto(f"{self.live_server_url}/sheets/big/", timeout=120_000)  # the process reads the sheet once
        page.wait_for_selector("#grid[data-loaded]", timeout=120_000)
        assert page.inner_text("#grid-count") == "100000 entries"
        assert page.locator("#grid .tabulator-row").count() < 200  # virtual: only what is on screen is drawn
        first = page.locator("#grid .tabulator-row").first
        assert first.locator(".col-shot_key").inner_text() == "BIG-20261101-099999"  # newest first

        header = page.locator("#grid .tabulator-header").bounding_box()
        page.focus("#grid")
        page.keyboard.press("End")
        last = page.locator("#grid .tabulator-row[data-entry='big:00000000']")
        last.wait_for()
        assert last.is_visible() and "tabulator-selected" in last.get_attribute("class")
        assert last.locator(".col-shot_key").inner_text() == "BIG-20261101-000000"
        assert page.locator("#grid .tabulator-header").bounding_box() == header  # the header stays
        page.keyboard.press("ArrowUp")  # keyboard navigation moves the selection
        assert "tabulator-selected" in page.locator("#grid .tabulator-row[data-entry='big:00000001']").get_attribute(
            "class"
        )

    def test_a_new_entry_flashes_into_the_grid_and_the_count_follows(self):
        self.entry(energy=1.0, shot_key="GRD-20261202-000001")
        page = self.page()
        self.open_grid(page, query="?f_energy_min=2")  # the grid's filters apply to live rows too
        assert page.inner_text("#grid-count") == "0 entries"
        page.wait_for_selector("#plot canvas")  # drawn once, with no point
        low = self.entry(energy=1.5, shot_key="GRD-20261202-000002")
        with page.expect_response(lambda response: "/plot.json" in response.url) as plot:  # the plot redraws too
            high = self.entry(energy=7.5, shot_key="GRD-20261202-000003", note="live")
        assert plot.value.json()["y"] == [7.5]
        row = page.locator(f"#grid .tabulator-row[data-entry='{high['_id']}']")
        row.wait_for()
        assert "grid-fresh" in row.get_attribute("class")
        assert row.locator(".col-energy").inner_text() == "7.5"
        assert page.locator(f"#grid [data-entry='{low['_id']}']").count() == 0
        assert page.inner_text("#grid-count") == "1 entry"
        wait_until(lambda: "grid-fresh" not in row.get_attribute("class"))  # the flash fades

    def test_clicking_a_plot_point_selects_its_row(self):
        saved = [
            self.entry(energy=energy, pressure=energy * 2, shot_key=f"GRD-20261202-00000{n}")
            for n, energy in enumerate((1.0, 5.0, 3.0), start=1)
        ]
        page = self.page()
        self.open_grid(page)
        page.check("input[name=plot-y][value=pressure]")  # two fields at once
        page.select_option("#plot-x", "shot")
        page.wait_for_selector("#plot .u-legend :text('Pressure [mbar]')")
        wait_until(lambda: page.inner_text("#plot-axes").startswith("x: shot number"))
        assert page.inner_text("#plot-axes") == "x: shot number; y: Energy [J] (left), Pressure [mbar] (right)"
        box = page.locator("#plot .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # shot 2, in the middle
        wait_until(lambda: "GRD-20261202-000002" in page.inner_text("#plot-hover"))
        assert "Energy 5.0 J" in page.inner_text("#plot-hover") or "Energy 5 J" in page.inner_text("#plot-hover")
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        selected = page.locator("#grid .tabulator-row.tabulator-selected")
        selected.wait_for()
        assert selected.get_attribute("data-entry") == saved[1]["_id"]

    def test_on_a_phone_the_shot_key_stays_while_the_other_columns_scroll(self):
        for n in range(1, 4):
            self.entry(energy=float(n), pressure=1.0, note="a long note " * 5, shot_key=f"GRD-20261202-00000{n}")
        page = self.page(width=390, height=844)
        self.open_grid(page)
        grid = page.locator("#grid").bounding_box()
        assert grid["x"] >= 0 and grid["x"] + grid["width"] <= 390  # the grid fits the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the page does not scroll sideways
        plot = page.locator("#plot-panel").bounding_box()
        assert plot["y"] >= grid["y"] + grid["height"] - 1  # the plot below the grid, not beside it
        shot = page.locator("#grid .tabulator-row .col-shot_key").first
        note = page.locator("#grid .tabulator-row .col-note").first
        before = (shot.bounding_box()["x"], note.bounding_box()["x"])
        page.locator("#grid .tabulator-tableholder").evaluate("holder => { holder.scrollLeft = 10000; }")
        wait_until(lambda: note.bounding_box()["x"] < before[1])
        assert shot.bounding_box()["x"] == before[0]  # frozen
        assert shot.inner_text() == "GRD-20261202-000003"

    def test_wide_screens_show_the_plot_beside_the_grid(self):
        self.entry(energy=1.0, shot_key="GRD-20261202-000001")
        page = self.page(width=1400)
        self.open_grid(page)
        page.wait_for_selector("#plot canvas")
        grid, plot = page.locator("#grid").bounding_box(), page.locator("#plot-panel").bounding_box()
        assert plot["x"] >= grid["x"] + grid["width"] and abs(plot["y"] - grid["y"]) < 100
