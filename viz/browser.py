"""Open an explorer page (:func:`viz.explore`) in headless Chromium and read the numbers it shows.

The browser tests and ``benchmarks/bench_explore.py`` drive the distribution's Chromium through
Playwright's Python package (``pip install "ncg[browser]"``; Playwright's own browser download is
not needed: :func:`find_chromium` finds ``chromium`` on the ``PATH``, or ``$NCG_CHROMIUM``). The
page reports its own timings, measured with ``performance.now()``: the first frame (from the
start of navigation) and every redraw, each one finished to the last pixel.
``python -m viz.browser PAGE.html PNG [--hover ID]`` saves a screenshot (:func:`screenshot`).

Examples
--------
>>> reason = browser_missing()
>>> reason is None or reason.startswith("no ")
True
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

__all__ = ["CHROMIUM_ARGS", "find_chromium", "browser_missing", "ExplorerPage", "chromium", "open_explorer",
           "interaction_ms", "screenshot"]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Headless, offline, no GPU: the page must work with none of these services."""


def find_chromium() -> str | None:
    """The Chromium executable: ``$NCG_CHROMIUM`` if set, else ``chromium`` or ``chromium-browser``
    on the PATH; None if that is no executable."""
    if os.environ.get("NCG_CHROMIUM"):
        return shutil.which(os.environ["NCG_CHROMIUM"])
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_missing() -> str | None:
    """Why the page cannot be opened here (no Playwright, no Chromium), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no playwright: pip install 'ncg[browser]'"
    if find_chromium() is None:
        if os.environ.get("NCG_CHROMIUM"):
            return f"no executable at $NCG_CHROMIUM={os.environ['NCG_CHROMIUM']}"
        return "no chromium on the PATH (apt-get install chromium) and no $NCG_CHROMIUM"
    return None


@dataclass
class ExplorerPage:
    """An open explorer page: the Playwright ``page`` and the console errors seen so far."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def call(self, expression: str, *args: Any) -> Any:
        """The value of ``window.ncgExplorer.<expression>`` called with ``args`` (JSON values)."""
        return self.page.evaluate(f"(args) => window.ncgExplorer.{expression}(...args)", list(args))

    def stats(self) -> dict[str, Any]:
        """What the page shows: drawn and hidden edge counts, round, threshold, timings."""
        return self.call("stats")

    def settled(self) -> dict[str, Any]:
        """:meth:`stats` once the page has drawn its full frame (after pan, zoom or hover)."""
        self.page.wait_for_function("window.ncgExplorer.stats().settled")
        return self.stats()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``) with :data:`CHROMIUM_ARGS`, closed on exit.

    Raises
    ------
    RuntimeError
        If Playwright or Chromium is missing (the reason of :func:`browser_missing`).
    """
    reason = browser_missing()
    if reason is not None:
        raise RuntimeError(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_explorer(path: str | os.PathLike, browser: Any = None, viewport: tuple[int, int] = (1400, 850),
                  timeout_s: float = 60.0) -> Iterator[ExplorerPage]:
    """Open ``path`` from ``file://`` in a new page of ``browser`` (default: a :func:`chromium`
    of its own) and wait for its first frame.

    Console errors and uncaught exceptions are collected in :attr:`ExplorerPage.errors`.
    """
    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(chromium())
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        stack.callback(page.close)
        page.set_default_timeout(timeout_s * 1000)
        opened = ExplorerPage(page)
        page.on("console", lambda message: message.type == "error" and opened.errors.append(message.text))
        page.on("pageerror", lambda error: opened.errors.append(str(error)))
        page.goto(Path(path).resolve().as_uri())
        page.wait_for_function("window.ncgExplorer && window.ncgExplorer.stats().firstFrameMs !== null")
        yield opened


def interaction_ms(opened: ExplorerPage, steps: int = 12) -> dict[str, float]:
    """Median milliseconds of the frames a mouse drag (pan) and wheel turns (zoom) redraw.

    Drags and turns the mouse over the middle of the graph, ``steps`` events each, as a user
    does; each event redraws one frame, timed by the page.
    """
    page = opened.page
    box = page.locator("#graph").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    result = {}
    for kind in ("pan", "zoom"):
        before = opened.stats()["frames"]
        page.mouse.move(x, y)
        if kind == "pan":
            page.mouse.down()
            for k in range(steps):
                page.mouse.move(x + 6 * (k + 1), y + 3 * (k + 1))
            page.mouse.up()
        else:
            for k in range(steps):
                page.mouse.wheel(0, -60 if k % 2 == 0 else 50)
        frames = [f for f in opened.call("frameLog") if f["frame"] > before and f["interactive"]]
        result[f"{kind}_ms"] = statistics.median(frame["ms"] for frame in frames) if frames else float("nan")
        result[f"{kind}_frames"] = len(frames)
        opened.settled()
    return result


def screenshot(page_path: str | os.PathLike, png_path: str | os.PathLike, hover: int | None = None,
               viewport: tuple[int, int] = (1200, 700), colors: int = 256) -> Path:
    """Save a PNG of the explorer page ``page_path``, the mouse on neuron id ``hover`` if given
    (its edges, tooltip and receptive field shown), reduced to ``colors`` colours (small files).

    Returns
    -------
    Path
        ``png_path``.
    """
    from PIL import Image

    with open_explorer(page_path, viewport=viewport) as opened:
        opened.settled()
        if hover is not None:
            where = opened.call("screenOf", hover)
            opened.page.mouse.move(where["x"], where["y"])
            opened.settled()
        png = opened.page.screenshot()
        if opened.errors:
            raise RuntimeError(f"{page_path} logged console errors: {opened.errors}")
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors)
    image.save(png_path, optimize=True)
    return Path(png_path)


def main(argv: list[str] | None = None) -> int:
    """``python -m viz.browser PAGE.html PNG [--hover ID]``: :func:`screenshot`."""
    parser = argparse.ArgumentParser(prog="python -m viz.browser", description="Screenshot an explorer page.")
    parser.add_argument("page", help="an explorer page written by python -m viz explore")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--hover", type=int, help="neuron id to put the mouse on")
    parser.add_argument("--size", type=int, nargs=2, default=(1200, 700), metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args(argv)
    print(screenshot(args.page, args.png, hover=args.hover, viewport=tuple(args.size)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
