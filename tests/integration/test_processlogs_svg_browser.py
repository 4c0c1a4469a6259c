"""The `.svg` flamegraph in real headless Chromium (Debian package): renders, hover, click to
zoom, search, and a screenshot that is not blank."""
import json

import pytest

from pyliveupdate_controller.processlogs.render_svg import render_svg
from support_processlogs import Browser, png_distinct_colors
from support_processlogs import web_trace

RESULTS = "polls.views.results"
MANAGER = "django.db.manager.Manager.all"
QUERY = "django.db.query.Query.__init__"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svg")
    svg = tmp / "profile.svg"
    svg.write_text(render_svg(web_trace().report()))
    browser = Browser(str(tmp / "chromium-profile"))
    try:
        browser.open(svg.as_uri())
        yield browser
    finally:
        browser.close()


def box(page, name):
    """Bounding box of a frame's rect, or None when hidden."""
    return page.eval(
        "(function(){var g=[...document.querySelectorAll('g.f')].find(g=>g.dataset.n===%r);"
        "if(getComputedStyle(g).display==='none')return null;"
        "var r=g.querySelector('rect').getBoundingClientRect();"
        "return {x:r.x,y:r.y,w:r.width,h:r.height,label:g.querySelector('text').textContent};})()"
        % name)


def test_renders_every_frame_with_script_laid_out_labels(page):
    assert page.eval("document.querySelectorAll('g.f').length") == 7
    root = box(page, "all")
    assert abs(root["w"] - 1180) < 1 and root["label"] == "all"
    results = box(page, RESULTS)
    assert results["w"] > 1100 and results["label"] == RESULTS
    assert results["y"] < root["y"]             # callees stack on top of their callers


def test_hover_shows_name_time_and_percent(page):
    b = box(page, RESULTS)
    page.mouse("mouseMoved", b["x"] + 50, b["y"] + b["h"] / 2)
    details = page.eval("document.getElementById('details').textContent")
    assert details.startswith(RESULTS + " (1,380.000 ms, 99.64%")
    page.mouse("mouseMoved", 5, 5)
    assert page.eval("document.getElementById('details').textContent").strip() == ""


def test_click_zooms_and_reset_restores(page):
    before = box(page, MANAGER)
    assert before["w"] < 300
    page.click(before["x"] + 5, before["y"] + before["h"] / 2)
    assert page.eval("document.documentElement.getAttribute('data-zoomed')") == MANAGER
    zoomed = box(page, MANAGER)
    assert abs(zoomed["w"] - 1180) < 1
    assert box(page, QUERY)["w"] == pytest.approx(1180 * 20 / 260, abs=1)
    assert box(page, "4510-MainThread") is None           # outside the zoomed frame
    assert box(page, RESULTS)["w"] > 1170                 # ancestors span the width
    assert page.eval("document.getElementById('unzoom').classList.contains('hide')") is False
    reset = page.eval("(function(){var r=document.getElementById('unzoom')"
                      ".getBoundingClientRect();return [r.x+r.width/2,r.y+r.height/2];})()")
    page.click(*reset)
    assert page.eval("document.documentElement.hasAttribute('data-zoomed')") is False
    assert box(page, MANAGER)["w"] == pytest.approx(before["w"], abs=0.5)
    assert box(page, "4510-MainThread") is not None


def test_search_highlights_matches(page):
    assert page.eval("search('Query|Manager')") == 2
    fills = page.eval("[...document.querySelectorAll('g.f')].filter(g=>g.querySelector('rect')"
                      ".getAttribute('fill')==='rgb(230,0,230)').map(g=>g.dataset.n)")
    assert sorted(fills) == sorted([QUERY, MANAGER])
    # nested matches count once: Manager.all covers Query.__init__
    assert page.eval("document.getElementById('matched').textContent") == "Matched: 18.8%"
    page.eval("resetSearch()")
    assert page.eval("document.documentElement.hasAttribute('data-matches')") is False


def test_screenshot_is_not_blank(page):
    height = page.eval("document.documentElement.getAttribute('height')")
    png = page.screenshot_png(clip={"x": 0, "y": 0, "width": 1200, "height": int(height)})
    assert png_distinct_colors(png) >= 8        # background, text, grey, blue, frame colours


def test_labels_cut_in_the_browser_as_in_python(page):
    from pyliveupdate_controller.processlogs.render_svg import fit_label
    name = "django.core.handlers.exception.convert_exception_to_response.<locals>.inner"
    for fit in (2, 4, 6, 10, 20, 30, 55, 80):
        assert page.eval("fitLabel(%s, %d)" % (json.dumps(name), fit)) == fit_label(name, fit)
    # zoomed out, Manager.all's frame is too narrow for the whole name: its own name stays
    b = box(page, MANAGER)
    assert b["label"].endswith("Manager.all")
