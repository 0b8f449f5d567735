"""The peers maildesk is compared with, each installed from PyPI into its own virtualenv.

- Roundup (classic tracker on SQLite), fed with `roundup-mailgw TRACKER mailbox FILE`.
- django-helpdesk (a minimal Django site on SQLite), fed with its `get_email` command
  reading a local directory of .eml files.

Virtualenvs, the Django site and its migrated template database live under
bench/.cache/peers/ and are reused by later runs. Each measured run gets a fresh tracker or
database in its own work directory. What each needed to run at all is noted where it is
done (and in bench/README.md).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from common import CACHE, Run, check_run, run_measured

PEERS = CACHE / "peers"
ROUNDUP_VERSION = "2.6.0"
HELPDESK_VERSION = "2.6.1"


def peer_python(name: str, requirements: list[str]) -> Path:
    """The python of a virtualenv with `requirements` installed (created on first use)."""
    venv = PEERS / name
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(requirements):
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing {' '.join(requirements)} into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True)
    marker.write_text("\n".join(requirements))
    return python


def installed_versions(python: Path, dists: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, sys\n"
        "print(';'.join(f'{d}={m.version(d)}' for d in sys.argv[1:]))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *dists], check=True, capture_output=True, text=True
    ).stdout.strip()
    return dict(pair.split("=", 1) for pair in out.split(";"))


# --- Roundup --------------------------------------------------------------------------------


class Roundup:
    """A fresh classic tracker on SQLite; anonymous mail may open issues.

    Needed to run: `mail_domain` (the mail gateway refuses to start without it), the
    'Email Access' permission for Anonymous (commented out in the classic schema; without
    it every mail from an unknown sender is bounced), and `[mail] debug` so that mail the
    tracker sends is written to a file instead of an SMTP server. `rounds` sets
    password_pbkdf2_default_rounds: the gateway hashes a random password for every new
    sender, at 250,000 rounds by default.
    """

    tag_format = "[issue{n}]"
    name = "roundup"

    def __init__(self, work: Path, rounds: int | None = 1000) -> None:
        self.python = peer_python(f"roundup-{ROUNDUP_VERSION}", [f"roundup=={ROUNDUP_VERSION}"])
        self.bin = self.python.parent
        self.work = work
        self.tracker = work / "tracker"
        self.rounds = rounds
        self.log = work / "roundup.log"

    def versions(self) -> dict[str, str]:
        return installed_versions(self.python, ["roundup"])

    def prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        options = "mail_domain=example.com,mail_host=localhost"
        if self.rounds is not None:
            options += f",password_pbkdf2_default_rounds={self.rounds}"
        admin = str(self.bin / "roundup-admin")
        install = [admin, "-i", str(self.tracker), "install", "classic", "sqlite", options]
        check_run(run_measured(install, log=self.log), "roundup-admin install", self.log)
        schema = self.tracker / "schema.py"
        text = schema.read_text()
        line = "db.security.addPermissionToRole('Anonymous', 'Email Access')"
        if f"#{line}" not in text:
            raise RuntimeError("classic schema changed: Email Access line not found")
        schema.write_text(text.replace(f"#{line}", line))
        config = self.tracker / "config.ini"
        text = config.read_text()
        text, n = re.subn(
            r"(\[mail\][\s\S]*?\n)debug = *\n",
            rf"\1debug = {self.work / 'sent.txt'}\n",
            text,
            count=1,
        )
        if n != 1:
            raise RuntimeError("Roundup config.ini changed: [mail] debug not found")
        config.write_text(text)
        init = [admin, "-i", str(self.tracker), "initialise", "admin-password"]
        check_run(run_measured(init, log=self.log), "roundup-admin initialise", self.log)

    def run(self, mbox: Path | None) -> Run:
        """Feed an mbox (None: an empty one). The gateway empties what it reads: a copy."""
        copy = self.work / "incoming.mbox"
        if mbox is None:
            copy.write_bytes(b"")
        else:
            shutil.copyfile(mbox, copy)
        cmd = [str(self.bin / "roundup-mailgw"), str(self.tracker), "mailbox", str(copy)]
        run = run_measured(cmd, cwd=self.work, log=self.log)
        check_run(run, "roundup-mailgw", self.log)
        return run

    def threads(self) -> list[tuple[str, str]]:
        db = sqlite3.connect(self.tracker / "db" / "db")
        try:
            rows = db.execute(
                "SELECT m._messageid, im.nodeid FROM _msg m"
                " JOIN issue_messages im ON im.linkid = m.id"
            )
            return [(str(mid), str(issue)) for mid, issue in rows]
        finally:
            db.close()


# --- django-helpdesk ------------------------------------------------------------------------

SETTINGS = '''"""A minimal Django site for django-helpdesk's mail ingestion (benchmark only)."""
import os

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
    "django.contrib.sites", "django.contrib.humanize", "rest_framework", "helpdesk",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# Teams mode needs the optional pinax-teams app; mail ingestion does not use it.
HELPDESK_TEAMS_MODE_ENABLED = False
# The default list refuses .log and .zip attachments (and drops them); maildesk and
# Roundup keep every attachment, so this site does too.
HELPDESK_VALID_EXTENSIONS = [
    ".txt", ".asc", ".pdf", ".doc", ".docx", ".odt", ".jpg", ".png", ".eml", ".log", ".zip",
]
SITE_ID = 1
ROOT_URLCONF = "urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["HD_DB"]}}
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Mail the helpdesk sends (acknowledgements to submitters) is written to files.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("HD_MAIL", "sent")
MEDIA_ROOT = os.environ.get("HD_MEDIA", "media")
STATIC_URL = "/static/"
DEFAULT_FROM_EMAIL = "support@example.com"
'''
URLS = """from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
"""
SETUP_QUEUE = """import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
import django
django.setup()
from helpdesk.models import Queue
Queue.objects.create(
    title="Support", slug="support", email_address="support@example.com",
    allow_email_submission=True, email_box_type="local", email_box_local_dir=sys.argv[1],
    email_box_interval=0, logging_type="none",
)
"""
# get_email as `manage.py get_email` runs it, except that the mail directory is read in
# name order: the command takes os.listdir() order, which on ext4 is hash order, and then
# replies are processed before the request they answer and tickets are numbered at random.
GET_EMAIL = """import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
import django
django.setup()
_listdir = os.listdir
os.listdir = lambda path=".": sorted(_listdir(path))
from django.core.management import call_command
call_command("get_email", quiet=True)
"""


class Helpdesk:
    """django-helpdesk with one queue (slug `support`) reading a local .eml directory."""

    tag_format = "[support-{n}]"
    name = "django-helpdesk"

    def __init__(self, work: Path) -> None:
        requirement = f"django-helpdesk=={HELPDESK_VERSION}"
        self.python = peer_python(f"django-helpdesk-{HELPDESK_VERSION}", [requirement])
        self.site = PEERS / f"helpdesk-site-{HELPDESK_VERSION}"
        self.work = work
        self.db = work / "helpdesk.sqlite3"
        self.mail = work / "mail"
        self.log = work / "helpdesk.log"
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HD_DB": str(self.db),
            "HD_MAIL": str(work / "sent"),
            "HD_MEDIA": str(work / "media"),
            "DJANGO_SETTINGS_MODULE": "settings",
        }

    def versions(self) -> dict[str, str]:
        return installed_versions(self.python, ["django-helpdesk", "Django"])

    def _site(self) -> Path:
        """The site files and a migrated, empty database to copy (made once)."""
        template = self.site / "template.sqlite3"
        files = {"settings.py": SETTINGS, "urls.py": URLS}
        fresh = all(
            (self.site / n).exists() and (self.site / n).read_text() == t for n, t in files.items()
        )
        if fresh and template.exists():
            return template
        self.site.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (self.site / name).write_text(text)
        template.unlink(missing_ok=True)
        tmp = self.site / "migrating.sqlite3"
        tmp.unlink(missing_ok=True)
        code = (
            "import django; from django.core.management import call_command; "
            "django.setup(); call_command('migrate', verbosity=0)"
        )
        env = {**self.env, "HD_DB": str(tmp)}
        log = self.site / "migrate.log"
        check_run(
            run_measured([str(self.python), "-c", code], cwd=self.site, env=env, log=log),
            "django migrate",
            log,
        )
        tmp.rename(template)
        return template

    def prepare(self) -> None:
        template = self._site()
        (self.site / "setup_queue.py").write_text(SETUP_QUEUE)
        (self.site / "get_email.py").write_text(GET_EMAIL)
        self.work.mkdir(parents=True, exist_ok=True)
        self.mail.mkdir(exist_ok=True)
        shutil.copyfile(template, self.db)
        cmd = [str(self.python), str(self.site / "setup_queue.py"), str(self.mail)]
        check_run(
            run_measured(cmd, cwd=self.site, env=self.env, log=self.log), "queue setup", self.log
        )

    def run(self, eml_dir: Path | None) -> Run:
        """Process the .eml files of eml_dir (None: an empty directory)."""
        for old in self.mail.iterdir():
            old.unlink()
        if eml_dir is not None:
            for path in sorted(eml_dir.iterdir()):
                shutil.copyfile(path, self.mail / path.name)
        cmd = [str(self.python), str(self.site / "get_email.py")]
        run = run_measured(cmd, cwd=self.site, env=self.env, log=self.log)
        check_run(run, "get_email", self.log)
        left = list(self.mail.iterdir())
        if left:
            raise RuntimeError(f"django-helpdesk left {len(left)} messages unprocessed")
        return run

    def threads(self) -> list[tuple[str, str]]:
        db = sqlite3.connect(self.db)
        try:
            rows = db.execute("SELECT message_id, ticket_id FROM helpdesk_followup")
            return [(str(mid), str(ticket)) for mid, ticket in rows if mid]
        finally:
            db.close()
