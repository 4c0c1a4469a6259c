"""The JavaScript and CSS embedded in our `.svg` flamegraphs (hover, click to zoom, search).

Each frame is `<g class="f" data-n=name data-x=start data-w=width data-d=depth>` where x and w
are in the profile's own unit (ns of inclusive time), so the layout is recomputed exactly on
zoom. `search(term)` and `zoom(g)` / `unzoom()` are also called by the browser test.
"""

STYLE = """
text { font-family: monospace; font-size: 12px; fill: #000; }
#title { font-size: 17px; text-anchor: middle; }
#details { font-size: 12px; }
.button { cursor: pointer; fill: #0645ad; }
.button:hover { text-decoration: underline; }
.hide { display: none; }
g.f { cursor: pointer; }
g.f:hover rect { stroke: #000; stroke-width: 0.5; }
g.f text { pointer-events: none; }
g.parent { opacity: 0.5; }
"""

SCRIPT = r"""
"use strict";
var svg, frames, details, unzoomBtn, matchedText, searchBtn;
var W, PAD, FH, CHARW = 7.3, TOTAL, BOTTOM, zoomed = null, searching = null;

function init() {
    svg = document.documentElement;
    frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
    details = document.getElementById("details").firstChild;
    unzoomBtn = document.getElementById("unzoom");
    matchedText = document.getElementById("matched");
    searchBtn = document.getElementById("search");
    W = +svg.getAttribute("data-width");
    PAD = +svg.getAttribute("data-pad");
    FH = +svg.getAttribute("data-frame-height");
    TOTAL = +svg.getAttribute("data-total");
    BOTTOM = +svg.getAttribute("data-bottom");
    frames.forEach(function (g) {
        g.x = +g.getAttribute("data-x");
        g.w = +g.getAttribute("data-w");
        g.d = +g.getAttribute("data-d");
        g.name = g.getAttribute("data-n");
        g.rect = g.querySelector("rect");
        g.label = g.querySelector("text");
        g.fill = g.rect.getAttribute("fill");
        g.addEventListener("mouseover", function () { details.nodeValue = g.querySelector("title").textContent; });
        g.addEventListener("mouseout", function () { details.nodeValue = " "; });
        g.addEventListener("click", function () { zoom(g); });
    });
    unzoomBtn.addEventListener("click", unzoom);
    searchBtn.addEventListener("click", function () {
        if (searching) { resetSearch(); return; }
        var term = prompt("Search for (regular expression):", "");
        if (term) { search(term); }
    });
    window.addEventListener("keydown", function (e) {
        if ((e.ctrlKey || e.metaKey) && e.key === "f") {
            e.preventDefault();
            var term = prompt("Search for (regular expression):", searching || "");
            if (term) { search(term); }
        } else if (e.key === "Escape") {
            unzoom();
            resetSearch();
        }
    });
    var q = new URLSearchParams(window.location.search).get("s");
    layout(0, TOTAL, -1);
    if (q) { search(q); }
}

function place(g, x, w) {
    var px = PAD + (x / TOTAL) * (W - 2 * PAD) * 1.0;
    var pw = (w / TOTAL) * (W - 2 * PAD);
    g.rect.setAttribute("x", px.toFixed(2));
    g.rect.setAttribute("width", Math.max(pw, 0).toFixed(2));
    g.label.setAttribute("x", (px + 3).toFixed(2));
    g.label.textContent = fitLabel(g.name, Math.floor((pw - 6) / CHARW));
}

/* render_svg.fit_label: cut the module path from the left, keep the function's own name. */
function fitLabel(name, fit) {
    if (fit < 3) { return ""; }
    if (name.length <= fit) { return name; }
    for (var dot = name.indexOf("."); dot >= 0; dot = name.indexOf(".", dot + 1)) {
        var tail = "\u2026" + name.substring(dot + 1);
        if (tail.length <= fit) { return tail; }
    }
    var own = name.substring(name.lastIndexOf(".") + 1);
    return own.substring(0, fit - 1) + "\u2026";
}

/* Show [x0, x0 + w0] across the full width; frames above depth d0 in that range scale,
   ancestors span the width (faded), everything else hides. */
function layout(x0, w0, d0) {
    var scale = TOTAL / w0, eps = w0 * 1e-9;
    frames.forEach(function (g) {
        var inside = g.x >= x0 - eps && g.x + g.w <= x0 + w0 + eps;
        if (g.d < d0 && g.x <= x0 + eps && g.x + g.w >= x0 + w0 - eps) {
            g.classList.remove("hide");
            g.classList.add("parent");
            place(g, 0, TOTAL);
        } else if (g.d >= d0 && inside) {
            g.classList.remove("hide", "parent");
            place(g, (g.x - x0) * scale, g.w * scale);
        } else {
            g.classList.add("hide");
            g.classList.remove("parent");
        }
    });
}

function zoom(g) {
    if (g.d === 0) { unzoom(); return; }
    zoomed = g;
    layout(g.x, g.w, g.d);
    unzoomBtn.classList.remove("hide");
    svg.setAttribute("data-zoomed", g.name);
}

function unzoom() {
    zoomed = null;
    layout(0, TOTAL, -1);
    unzoomBtn.classList.add("hide");
    svg.removeAttribute("data-zoomed");
}

/* Highlight frames whose name matches; the matched share counts nested matches once. */
function search(term) {
    var re;
    try { re = new RegExp(term); } catch (e) { re = new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")); }
    var hits = [];
    frames.forEach(function (g) {
        if (g.d > 0 && re.test(g.name)) {
            g.rect.setAttribute("fill", "rgb(230,0,230)");
            hits.push(g);
        } else {
            g.rect.setAttribute("fill", g.fill);
        }
    });
    hits.sort(function (a, b) { return a.x - b.x || b.w - a.w; });
    var covered = 0, end = -1;
    hits.forEach(function (g) {
        if (g.x >= end) { covered += g.w; end = g.x + g.w; }
        else if (g.x + g.w > end) { covered += g.x + g.w - end; end = g.x + g.w; }
    });
    searching = term;
    searchBtn.firstChild.nodeValue = "Reset Search";
    matchedText.firstChild.nodeValue = hits.length
        ? "Matched: " + (100 * covered / TOTAL).toFixed(1) + "%" : "no match";
    svg.setAttribute("data-matches", String(hits.length));
    return hits.length;
}

function resetSearch() {
    frames.forEach(function (g) { g.rect.setAttribute("fill", g.fill); });
    searching = null;
    searchBtn.firstChild.nodeValue = "Search";
    matchedText.firstChild.nodeValue = " ";
    svg.removeAttribute("data-matches");
}

window.addEventListener("load", init);
"""
