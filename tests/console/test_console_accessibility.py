"""What an accessibility check asks of the console that can be checked without a browser:
every form control has a label, every button and link a name, each page a language, a
title and one heading 1, ids are unique; and the palette reads at WCAG AA contrast.
(The browser tests run axe-core over the same pages.)

The page tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources

from console_client import ask, parse

CSS = resources.files("madre.http").joinpath("static", "console", "console.css").read_text()


def problems_of(html: str) -> list[str]:
    page = parse(html)
    found = []
    tags = page.tags
    if not any(t == "html" and a.get("lang") for t, a in tags):
        found.append("no lang on <html>")
    if page.h1 != 1:
        found.append(f"{page.h1} h1 elements")
    ids = Counter(a["id"] for _, a in tags if a.get("id"))
    found += [f"id {i!r} used {n} times" for i, n in ids.items() if n > 1]
    for control in page.controls:
        if control.get("type") == "hidden":
            continue
        named = (control.get("id") in page.labels_for or control.get("aria-label")
                 or control.get("aria-labelledby"))
        if not named:
            found.append(f"{control['tag']} {control.get('name')!r} has no label")
    for button in page.buttons:
        if not (button["text"] or button.get("aria-label")):
            found.append(f"a button has no name: {button}")
    return found


def test_every_page_labels_its_controls_and_names_its_buttons(served, visitor) -> None:
    madre, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    root = visitor()
    assert problems_of(root.page("/console/sign-in")) == []
    root.sign_in("root")
    for path in ("/console", "/console/plans", f"/console/plans/{plan_id}", "/console/health"):
        assert problems_of(root.page(path)) == [], path
    assert problems_of(root.get("/console/no-such-page").text) == []


def test_every_link_has_text(served, visitor) -> None:
    _, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    root = visitor("root")
    for path in ("/console", f"/console/plans/{plan_id}"):
        html = root.page(path)
        for anchor in re.findall(r"<a\b[^>]*>(.*?)</a>", html, re.S):
            assert re.sub(r"<[^>]+>", "", anchor).strip(), (path, anchor)


# --------------------------------------------------------------------------- contrast


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def palette() -> dict[str, str]:
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", CSS))


def test_contrast_is_computed_as_wcag_says() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#767676", "#ffffff"), 2) == 4.54


def test_every_colour_pair_of_the_palette_reads_at_aa_contrast() -> None:
    colours = palette()
    pairs = [name[:-3] for name in colours if name.endswith("-fg")]
    assert len(pairs) >= 15
    for name in pairs:
        ratio = contrast(colours[f"{name}-fg"], colours[f"{name}-bg"])
        assert ratio >= 4.5, f"--{name}-fg on --{name}-bg: {ratio:.2f}:1"
    assert contrast(colours["focus"], colours["page-bg"]) >= 3  # the focus ring


def test_each_rule_that_colours_text_puts_it_on_its_own_pairs_background() -> None:
    colours = palette()
    text = re.sub(r"/\*.*?\*/", "", CSS, flags=re.S)
    checked = 0
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        fg = re.search(r"(?<![-\w])color:\s*var\(--([\w-]+)-fg\)", body)
        if not fg:
            continue
        checked += 1
        bg = re.search(r"background:\s*(?:var\(--([\w-]+)-bg\)|(transparent))", body)
        name = fg[1]
        if bg and bg[1]:
            assert bg[1] == name, f"{selector.strip()}: --{name}-fg on --{bg[1]}-bg"
        else:  # on whatever is behind: the page, or the top bar for its own rules
            behind = "top" if selector.strip().startswith(".top") else "page"
            ratio = contrast(colours[f"{name}-fg"], colours[f"{behind}-bg"])
            assert ratio >= 4.5, f"{selector.strip()}: {ratio:.2f}:1 on --{behind}-bg"
    assert checked >= 15
