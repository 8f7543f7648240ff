"""A PNG of the demo page after one fill-mask query, taken in headless Chromium (for a README or a model card).

    python demo/screenshot.py --model_name_or_path runs/quickstart \
        --sentence "Return a [MASK] of file names in the archive." --output docs/demo.png

Needs Debian's `chromium` (or `--chromium PATH`) and the `playwright` package; no browser is downloaded.
"""

import argparse
import shutil
import sys
from pathlib import Path

from small_encoders.demo.app import DemoError, build_app, get_demo

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--sentence", required=True, help="a sentence with the model's mask token")
    parser.add_argument("--output", required=True, help="the PNG to write")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args(argv)
    if not args.chromium:
        print("error: no chromium found; install Debian's chromium or pass --chromium PATH", file=sys.stderr)
        return 1
    try:
        get_demo(args.model_name_or_path)
    except DemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    app = build_app(args.model_name_or_path)
    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(url)
            page.locator("#fill-mask-input textarea").fill(args.sentence)
            page.locator("#fill-mask-button").click()
            page.locator("#fill-mask-output table, #fill-mask-output strong").first.wait_for(timeout=60_000)
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.output, full_page=True)
            browser.close()
    finally:
        app.close()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
