"""A real, throwaway MediaWiki for the shot-sheet tests (mwclient talks to it).

Uses Debian bookworm's `mediawiki` package (1.39) + SQLite, served by PHP's
built-in web server. This module installs no packages: setup must
`apt-get install -y --no-install-recommends` APT_PACKAGES first.
Each wiki (config, SQLite files, caches) lives entirely in the given tmp dir;
the code in /usr/share/mediawiki is only read.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import mwclient

# `mediawiki` depends on "apache2 | httpd" and `php8.2` on "libapache2-mod-php8.2 |
# php8.2-fpm | php8.2-cgi": naming micro-httpd (50 kB, no daemon of its own) and
# php8.2-cgi is what keeps apt from pulling in apache2. The generic php-cgi is
# not enough (apt still picks the apache module), hence the versioned names.
APT_PACKAGES = ("mediawiki", "php8.2-cli", "php8.2-cgi", "php8.2-sqlite3", "micro-httpd")
MW_DIR = Path("/usr/share/mediawiki")
ADMIN_USER = "Admin"
ADMIN_PASSWORD = "Lab-book-admin-pw-1"  # MediaWiki refuses short/common ones


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api_answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/api.php?action=query&meta=siteinfo&format=json", timeout=2) as r:
            return "query" in json.load(r)
    except (OSError, ValueError):
        return False


@contextmanager
def running_mediawiki(tmp_path):
    """Install a fresh wiki into tmp_path, serve it, yield its base URL."""
    php = shutil.which("php")
    if not php or not (MW_DIR / "maintenance/install.php").exists():
        raise RuntimeError(f"MediaWiki not installed: apt-get install {' '.join(APT_PACKAGES)}")
    tmp_path = Path(tmp_path)
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    # MediaWiki 1.39 reads the MW_CONFIG_FILE env var (BootstrapHelperFunctions.php),
    # which bypasses Debian's LocalSettings.php -> /etc/mediawiki symlink; the built-in
    # server passes its environment to getenv(), so one env serves CLI and web alike.
    env = {**os.environ, "MW_CONFIG_FILE": str(tmp_path / "LocalSettings.php")}
    subprocess.run(
        [
            php,
            "maintenance/install.php",
            "--quiet",
            "--dbtype",
            "sqlite",
            "--dbpath",
            str(tmp_path / "data"),
            "--dbname",
            "labwiki",
            "--server",
            base_url,
            "--scriptpath",
            "",  # so the API is at /api.php
            "--confpath",
            str(tmp_path),
            "--pass",
            ADMIN_PASSWORD,
            "--skins",
            "",
            "LabWiki",
            ADMIN_USER,
        ],
        cwd=MW_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(tmp_path / "LocalSettings.php", "a") as f:
        f.write("\n$wgShowExceptionDetails = true;\n")  # readable errors in API answers
    log = open(tmp_path / "php-server.log", "wb")
    server = subprocess.Popen(
        [php, "-S", f"127.0.0.1:{port}", "-t", str(MW_DIR)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while not _api_answers(base_url):
            # Exited early: most likely the port was taken between _free_port() and bind.
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"php -S did not serve {base_url}: " + (tmp_path / "php-server.log").read_text(errors="replace")
                )
            time.sleep(0.05)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def client(base_url: str, login: bool = False) -> mwclient.Site:
    """mwclient.Site for a wiki served at base_url (api.php sits at the root)."""
    url = urlsplit(base_url)
    site = mwclient.Site(url.netloc, path="/", scheme=url.scheme)
    if login:
        site.login(ADMIN_USER, ADMIN_PASSWORD)
    return site


def edit_page(base_url: str, title: str, text: str) -> None:
    """Create or replace a page through the API, as the admin."""
    client(base_url, login=True).pages[title].edit(text, summary="test fixture")


if __name__ == "__main__":  # self-check: python tests/shotsheet/mediawiki.py
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        with running_mediawiki(tmp) as url:
            print(f"wiki at {url} ready in {time.monotonic() - started:.2f}s")
            edit_page(url, "Targets", "* Aluminium\n* Copper\n* Gold\n")
            for name in ("Laser A", "Laser B", "Laser C"):
                edit_page(url, name, f"{name}.\n[[Category:Lasers]]")
            site = client(url)
            page = site.pages["Targets"]
            print("Targets text:", repr(page.text()), "revision:", page.revision)
            print("Category:Lasers members:", [p.name for p in site.categories["Lasers"].members()])
