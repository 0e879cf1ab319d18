#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""denvrd under a real systemd: the machine's own systemd booted as PID 1 of a throw-away
container, and the README's system-wide and per-user steps run in it word for word.

Usage: tests/systemd-boot.py BUILDDIR SRCDIR      (as root; it FAILS, never skips, otherwise)

The container: an overlay of / (lowerdir=/, upper and work dirs in a temporary directory),
without /etc/machine-id, booted with
    systemd-nspawn --register=no --keep-unit --link-journal=no -D ROOT --private-network -b
Every enabled service, socket and timer of the host image is masked there, and a unit that
never finishes holds network-online.target back on purpose.  Commands run inside with
`nsenter -t LEADER -a` (LEADER: the container's PID 1, the child of systemd-nspawn).  denvrd is
installed with `meson install --destdir ROOT` in place of the README's "meson setup build
--prefix=/usr && meson compile -C build && sudo meson install -C build": from BUILDDIR itself
when it has prefix /usr (as tests/run-all.sh configures its gcc build), else from a private
build made before the container boots (bounded by BUILD_SECONDS), in the temporary directory:
SRCDIR set up with BUILDDIR's compiler and every option BUILDDIR sets apart from the defaults,
but prefix /usr, and denvrd compiled.  BUILDDIR is never changed.  The mock upstream
(tests/mock_denvr.py) runs inside as a transient service.

The boot is the image's first boot, with denvrd already installed (issue 20): the install is
done before it, and the README's install line then finds it done.  The overlay's upper dir
hides the host's /etc/machine-id (a whiteout: removing it from the merged tree), so PID 1
finds none, says "Detected first boot", initialises a transient machine-id (committed later
by systemd-machine-id-commit.service) and presets every unit file as a first boot does
("Populated /etc with preset unit settings" on the console): Debian's presets are systemd's
90-systemd.preset, and anything it does not name is enabled.  The test itself enables
nothing of denvrd before the README's last step; the host's enabled units are masked before
the boot, and presets leave a masked unit alone.  systemd-sysusers.service creates user denvrd
early in that boot, before sockets.target starts the socket (SocketUser=denvrd).

Checked, in order (each step prints its time; the first failure ends the run):
  * before the boot: no /etc/machine-id in the image and denvrd.socket disabled there;
  * the first boot (first-boot-complete.target, ConditionFirstBoot=yes, active) preset the
    units: denvrd.socket enabled and listening, the only denvrd link made, and
    denvrd.service never started, not even tried (inactive, InactiveExitTimestamp 0,
    NRestarts 0, no journal entry); the same still holds after the README's steps up to its
    last one (so the old `WantedBy=multi-user.target`, which starts an unconfigured denvrd
    that fails and restarts every 5 s, fails the test);
  * the README's `systemctl enable --now denvrd.socket` (a no-op on the preset-enabled
    socket) and the first request, answered within 2 s while network-online.target is still
    waiting, start denvrd.service; then `systemctl disable --now denvrd.socket` (which stops
    the service too) and the README's step again, as on an image without presets: the first
    request is again answered within 2 s of `enable --now`, network-online.target waiting;
  * on /run/denvrd/denvrd.sock a member of group denvr is served, a non-member refused;
  * hardening in force at run time (/proc/PID/status: NoNewPrivs 1, Seccomp 2, no
    capabilities; /home empty in denvrd's mount namespace);
  * journal fields (journalctl -o json): REQUEST_ID, METHOD, PATH, STATUS, PEER_UID, and the
    login's MESSAGE_ID;
  * `systemctl reload denvrd`: same process, reload MESSAGE_ID, new default applied;
  * a lease (PUT /_denvrd/leases/servers/virtual/ID?cluster=Msc1&namespace=TENANT, 4h,
    destroy; by a member of denvr on the unix socket; the machine looked up upstream with
    GetServer first) is kept in /var/lib/denvrd/leases.json (StateDirectory=: the directory
    0700, the file 0600, both owned by denvrd) and survives `systemctl restart denvrd.service`
    (a new MainPID; GET /_denvrd/leases lists it with the same expires_at and action); DELETE
    removes it (200, then 404);
  * a SIGSTOPped denvrd is killed by the watchdog and restarted (WatchdogSec=2s drop-in);
  * `systemctl stop`: exit status 0 and a LogOut at the mock;
  * the per-user units under `systemctl --user` (lingering user manager): served on
    $XDG_RUNTIME_DIR/denvrd.sock and TCP, hardened, refused to other users, logged out on stop;
  * no warning from systemd (PID 1 or the user manager) about denvrd's units in the journal,
    apart from the watchdog's own messages during the watchdog step.
Everything is undone on every exit path (the container halted, or killed; the overlay
unmounted; the temporary directory removed), bounded by GUARD_SECONDS.
"""

import ctypes
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILD_SECONDS = 180          # a private build with prefix /usr, before the container
GUARD_SECONDS = 150          # the container's run, cleanup included; with BUILD_SECONDS it
                             # stays under meson's timeout (tests/meson.build)
FIRST_REQUEST_SECONDS = 2    # issue 12: the first request within 2 s of enable --now
MOCK_PORT = 9443             # inside the container's own network namespace
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GET_SERVERS = "/api/v1/servers/virtual/GetServers"
MEMBER, OUTSIDER = "nspalice", "nspbob"     # users created inside the container only
HOLD_UNIT = "denvrd-test-hold-online.service"
MOCK_UNIT = "denvrd-test-mock.service"
MESSAGE_ID_LOGIN = "4f0b6c2d3a8e4d17b1e5c9a07d2f6e31"
MESSAGE_ID_RELOAD = "b2a9e7c41f3d4c8a9e0f1a2b3c4d5e6f"
MESSAGE_ID_LOGOUT = "0d7e3a1b5c9f4e2a8b6d1c3e5f7a9b0c"
SYSTEM_SOCK = "/run/denvrd/denvrd.sock"
LEASE_VM, LEASE_CLUSTER = "vm-msc1-01", "Msc1"
LEASE_SECONDS = 4 * 3600     # "4h"


class Failure(Exception):
    pass


class GuardTimeout(Exception):
    pass


T0 = time.monotonic()


def say(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Failure as e:
            last = e
        if time.monotonic() > deadline:
            raise Failure("timed out after %gs waiting for %s%s" % (
                timeout, what, " (%s)" % last if last else ""))
        time.sleep(interval)


def positive_pid(text, what):
    """A pid read from somewhere, checked before any kill(): 0 or -1 would hit our own
    process group or everything."""
    s = str(text).strip()
    check(re.fullmatch(r"[0-9]+", s) is not None and int(s) > 1, "%s: %r is not a pid" % (what, s))
    return int(s)


# ---------------------------------------------------------------------------------------------
# the container
# ---------------------------------------------------------------------------------------------
def _pdeathsig():
    # If this script dies, systemd-nspawn gets SIGTERM and halts the container.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


class Container:
    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp / "root"
        self.nspawn = None
        self.leader = None
        self.mounted = False
        self.console = None
        self._uids = {}

    def mount(self):
        for d in ("upper", "work", "root"):
            (self.tmp / d).mkdir()
        opts = "lowerdir=/,upperdir=%s,workdir=%s" % (self.tmp / "upper", self.tmp / "work")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(self.root)],
                       check=True, timeout=30)
        self.mounted = True
        (self.root / "etc" / "machine-id").unlink(missing_ok=True)

    def boot(self):
        self.console = open(self.tmp / "console.log", "wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--link-journal=no",
             "-D", str(self.root), "--private-network", "-b"],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig)
        npid = positive_pid(self.nspawn.pid, "systemd-nspawn")

        def leader():
            check(self.nspawn.poll() is None, "systemd-nspawn exited with %s; console:\n%s" % (
                self.nspawn.returncode, self.console_text()))
            kids = Path("/proc/%d/task/%d/children" % (npid, npid)).read_text().split()
            for k in kids:
                if Path("/proc/%s/comm" % k).read_text().strip() == "systemd":
                    return k
            return None
        self.leader = positive_pid(wait_for(leader, 20, "the container's PID 1"), "leader")
        try:
            wait_for(lambda: self.sh("systemctl is-active multi-user.target", check=False)
                     .stdout.strip() == "active", 60, "multi-user.target in the container")
        except Failure as e:
            raise Failure("%s; console:\n%s" % (e, self.console_text()))

    def console_text(self, whole=False):
        try:
            text = (self.tmp / "console.log").read_text(errors="replace")
        except OSError:
            return ""
        return text if whole else text[-4000:]

    def cmd(self, argv, user=None, env=None):
        """argv run inside the container (as user, if given), with a clean environment."""
        e = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", "SYSTEMD_PAGER": "",
             "SYSTEMD_COLORS": "0"}
        pre = []
        if user:
            uid = self.uid(user)
            e.update(HOME="/home/" + user, USER=user, LOGNAME=user,
                     XDG_RUNTIME_DIR="/run/user/%d" % uid)
            pre = ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"]
        e.update(env or {})
        return ["nsenter", "-t", str(self.leader), "-a", "--", *pre, "env", "-i",
                *["%s=%s" % kv for kv in e.items()], *argv]

    def sh(self, script, user=None, input=None, timeout=30, check=True, env=None):
        argv = self.cmd(["/bin/sh", "-c", script], user=user, env=env)
        try:
            p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=timeout, cwd="/")
        except subprocess.TimeoutExpired:
            raise Failure("timed out after %ss: %s" % (timeout, script))
        if check and p.returncode != 0:
            raise Failure("`%s`%s exited %d:\n%s%s" % (script, " as " + user if user else "",
                          p.returncode, p.stdout, p.stderr))
        return p

    def uid(self, user):
        if user not in self._uids:
            p = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", "id", "-u", user],
                               stdout=subprocess.PIPE, text=True, timeout=10, check=True)
            self._uids[user] = int(p.stdout)
        return self._uids[user]

    def path(self, p):
        """A path of the container's root file system, seen from here (the overlay is
        shared); not for what the container mounts itself (/run, /proc, /tmp...)."""
        return self.root / p.lstrip("/")

    def halt(self):
        """Halt the container; kill it if that takes too long.  Never raises."""
        if self.nspawn is None:
            return
        try:
            if self.nspawn.poll() is None:
                self.nspawn.terminate()   # nspawn asks the container's systemd to halt
                try:
                    self.nspawn.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    say("the container did not halt within 20 s; killing it")
                    if self.leader and self.leader > 1:
                        os.kill(self.leader, signal.SIGKILL)   # its whole PID namespace
                    self.nspawn.kill()
                    self.nspawn.wait(timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            say("halting the container: %s" % e)
        if self.console:
            self.console.close()

    def unmount(self):
        if not self.mounted:
            return
        r = subprocess.run(["umount", str(self.root)], stderr=subprocess.PIPE, text=True,
                           timeout=30)
        if r.returncode != 0:
            say("umount: %s; detaching it lazily" % r.stderr.strip())
            subprocess.run(["umount", "-l", str(self.root)], timeout=30)
        self.mounted = False


# ---------------------------------------------------------------------------------------------
# preparing the image (before boot)
# ---------------------------------------------------------------------------------------------
HOLD_UNIT_TEXT = """\
[Unit]
Description=Holds network-online.target back (denvrd systemd-boot test)
DefaultDependencies=no
Before=network-online.target

[Service]
Type=oneshot
ExecStart=/bin/sleep infinity
TimeoutStartSec=infinity
"""


def prepare_image(c):
    # Mask what the host image would start; keep journald, logind, dbus (static units).
    out = subprocess.run(["systemctl", "--root=" + str(c.root), "list-unit-files",
                          "--state=enabled", "--no-legend", "--no-pager"],
                         stdout=subprocess.PIPE, text=True, check=True, timeout=30).stdout
    masks = sorted({line.split()[0] for line in out.splitlines() if line.split() and
                    re.search(r"\.(service|socket|timer|path)$", line.split()[0])})
    masks += ["systemd-networkd-wait-online.service", "getty@.service", "console-getty.service"]
    etc = c.path("/etc/systemd/system")
    for u in sorted(set(masks)):
        link = etc / u
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    say("masked %d units of the host image" % len(set(masks)))
    # network-online.target waits for a unit that never finishes; it is started after boot
    # (hold_network_online), as a target Wants= would order the wanting target after it.
    (etc / HOLD_UNIT).write_text(HOLD_UNIT_TEXT)
    d = etc / "network-online.target.d"
    d.mkdir(exist_ok=True)
    (d / "denvrd-test.conf").write_text("[Unit]\nWants=%s\n" % HOLD_UNIT)


def before_first_boot(c):
    """The image as it is before its first boot: denvrd installed, nothing of it enabled, no
    machine-id (so that PID 1 detects a first boot and presets every unit)."""
    check(not os.path.lexists(c.path("/etc/machine-id")),
          "the image has an /etc/machine-id: its boot would not be a first boot")
    p = subprocess.run(["systemctl", "--root=" + str(c.root), "is-enabled", "denvrd.socket"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    check(p.stdout.strip() == "disabled", "denvrd.socket in the image before its first boot: %s"
          % p.stdout.strip())
    links = [str(q) for n in ("denvrd.socket", "denvrd.service")
             for q in c.path("/etc/systemd").rglob(n)]
    check(not links, "the image has denvrd links before its first boot: %s" % links)
    say("image: denvrd installed, denvrd.socket disabled, no /etc/machine-id")


def service_state(c):
    return dict(line.split("=", 1) for line in c.sh(
        "systemctl show -p ActiveState -p Result -p NRestarts -p InactiveExitTimestampMonotonic "
        "denvrd.service").stdout.split())


def never_started(c, when):
    """denvrd.service has not been started, not even tried, and has no journal entry."""
    st = service_state(c)
    check(st == {"ActiveState": "inactive", "Result": "success", "NRestarts": "0",
                  "InactiveExitTimestampMonotonic": "0"},
          "denvrd.service was started %s: %s; journal:\n%s" % (when, st, c.sh(
              "journalctl --no-pager -n 20 -u denvrd.service", check=False).stdout))
    es = journal(c, "-u denvrd.service")
    check(not es, "journal entries for denvrd.service %s: %s" % (
        when, [e.get("MESSAGE") for e in es][:10]))


def first_boot(c):
    """Issue 20: the first boot presets every unit (Debian: enable all but a listed few);
    denvrd.socket comes out enabled and listening, and nothing starts denvrd.service."""
    fb = c.sh("systemctl show -p ConditionResult -p ActiveState first-boot-complete.target")
    check(sorted(fb.stdout.split()) == ["ActiveState=active", "ConditionResult=yes"],
          "not a first boot (first-boot-complete.target, ConditionFirstBoot=yes): %s" % fb.stdout)
    console = c.console_text(whole=True)
    check("Populated /etc with preset unit settings." in console,
          "PID 1 did not preset the units at the first boot; console:\n%s" % console[-4000:])
    state = c.sh("systemctl is-enabled denvrd.socket; systemctl is-active denvrd.socket",
                 check=False).stdout.split()
    check(state == ["enabled", "active"], "denvrd.socket after the first boot: %s (is-enabled, "
          "is-active); journal:\n%s" % (state, c.sh(
              "journalctl --no-pager -n 20 -u denvrd.socket", check=False).stdout))
    never_started(c, "at the first boot")
    wants = c.sh("find /etc/systemd/system -name 'denvrd*' -path '*.wants/*'").stdout.split()
    check(wants == ["/etc/systemd/system/sockets.target.wants/denvrd.socket"],
          "links the first boot's presets made for denvrd: %s" % wants)
    say("  first boot: presets enabled denvrd.socket (listening); denvrd.service never "
        "started, no journal entry")


def hold_network_online(c):
    c.sh("systemctl start --no-block network-online.target")
    wait_for(lambda: c.sh("systemctl is-active %s" % HOLD_UNIT, check=False).stdout.strip()
             == "activating", 10, "%s to be running" % HOLD_UNIT)
    check(c.sh("systemctl is-active network-online.target", check=False).stdout.strip()
          != "active", "network-online.target is active: the test cannot hold it back")


# ---------------------------------------------------------------------------------------------
# the README
# ---------------------------------------------------------------------------------------------
def readme_block(readme, marker):
    """The commands of the first ```sh block after the paragraph starting with marker."""
    i = readme.index(marker)
    m = re.compile(r"```sh\n(.*?)```", re.S).search(readme, i)
    check(m is not None, "README.md: no ```sh block after %r" % marker)
    cmds = [line.strip() for line in m.group(1).splitlines() if line.strip()]
    return cmds, readme[i:m.start()]


def strip_comment(cmd):
    return re.sub(r"\s+#\s.*$", "", cmd).strip()


def unsudo(cmd):
    return cmd[5:] if cmd.startswith("sudo ") else cmd


# ---------------------------------------------------------------------------------------------
# helpers inside the container
# ---------------------------------------------------------------------------------------------
def curl(c, url, user=None, unix=None, max_time=10, extra=""):
    """(exit code, HTTP status or 0, body) of a curl run inside the container."""
    sock = "--unix-socket %s " % shlex.quote(unix) if unix else ""
    p = c.sh("curl -sS --max-time %s %s%s-w '\\n%%{http_code}' %s" % (
        max_time, sock, extra, shlex.quote(url)), user=user, check=False, timeout=max_time + 10)
    body, _, code = p.stdout.rpartition("\n")
    return p.returncode, int(code or 0), body + p.stderr


def mock_requests(c, path):
    p = c.sh("curl -sS --cacert /etc/denvrd-test/ca.pem https://127.0.0.1:%d/_mock/requests"
             % MOCK_PORT)
    return [r for r in json.loads(p.stdout) if r["path"].startswith(path)]


def refused(c, user, sock):
    """user cannot connect to the unix socket sock: curl fails, and connect() says EACCES."""
    rc, code, body = curl(c, "http://localhost" + GET_SERVERS, user=user, unix=sock)
    check(rc == 7 and code == 0, "%s on %s: curl rc %d HTTP %d %s" % (user, sock, rc, code, body))
    p = c.sh("python3 -c 'import socket, sys\n"
             "try:\n socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print(\"connected\")\n"
             "except OSError as e:\n print(e.__class__.__name__)' %s" % shlex.quote(sock),
             user=user)
    check(p.stdout.strip() == "PermissionError", "%s connecting to %s: %s" % (
        user, sock, p.stdout.strip()))


def refused_tcp(c, user):
    """user gets a 403 envelope naming its uid over 127.0.0.1:3368, and nothing is forwarded."""
    before = len(mock_requests(c, GET_SERVERS))
    rc, code, body = curl(c, "http://127.0.0.1:3368" + GET_SERVERS, user=user)
    uid = c.sh("id -u %s" % shlex.quote(user)).stdout.strip()
    check(rc == 0 and code == 403 and ("uid %s may not use denvrd" % uid) in body,
          "%s over TCP: rc %d HTTP %d %s" % (user, rc, code, body))
    check(len(mock_requests(c, GET_SERVERS)) == before, "a refused TCP request reached upstream")


def main_pid(c, unit, user=None):
    p = c.sh("systemctl %sshow -p MainPID --value %s" % ("--user " if user else "", unit),
             user=user)
    return p.stdout.strip()


def proc_status(c, pid):
    """/proc/PID/status of a process of the container (pid as the container sees it)."""
    return dict(line.split(":", 1) for line in c.sh("cat /proc/%d/status" % pid)
                .stdout.splitlines() if ":" in line)


def check_hardening(c, pid, who, expect_no_caps_bounding):
    st = {k: v.strip() for k, v in proc_status(c, pid).items()}
    check(st.get("NoNewPrivs") == "1", "%s: NoNewPrivs is %r" % (who, st.get("NoNewPrivs")))
    check(st.get("Seccomp") == "2", "%s: Seccomp is %r (2 = filter)" % (who, st.get("Seccomp")))
    caps = ["CapInh", "CapPrm", "CapEff", "CapAmb"] + (["CapBnd"] if expect_no_caps_bounding
                                                         else [])
    for k in caps:
        check(int(st.get(k, "1"), 16) == 0, "%s: %s is %s" % (who, k, st.get(k)))
    return st


def journal_cursor(c):
    p = c.sh("journalctl -n 0 --show-cursor --no-pager", check=False)
    m = re.search(r"-- cursor: (\S+)", p.stdout)
    check(m is not None, "no journal cursor: %r" % p.stdout)
    return m.group(1)


def journal(c, args, after=None):
    cur = "--after-cursor=%s " % shlex.quote(after) if after else ""
    p = c.sh("journalctl -o json --no-pager %s%s" % (cur, args), timeout=30)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def systemd_warnings(entries):
    """Warnings (and worse) by systemd itself (PID 1 or a user manager) about denvrd."""
    bad = []
    for e in entries:
        if e.get("_COMM") != "systemd" or int(e.get("PRIORITY", "6")) > 4:
            continue
        msg = e.get("MESSAGE")
        if isinstance(msg, list):   # non-UTF-8 messages come as byte arrays
            msg = bytes(msg).decode(errors="replace")
        unit = e.get("UNIT") or e.get("USER_UNIT") or ""
        if unit.startswith("denvrd") or "denvrd" in (msg or ""):
            who = "PID 1" if e.get("_PID") == "1" else "user manager pid %s" % e.get("_PID")
            bad.append("%s (%s): %s" % (unit or "?", who, msg))
    return bad


# ---------------------------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------------------------
def edit_config(text, mock_user):
    """The README's 'edit it' step, done to the installed example."""
    def set_key(text, section, line):
        key = line.split("=", 1)[0].strip()
        m = re.search(r"^\[%s\]\n" % re.escape(section), text, re.M)
        check(m is not None, "the example has no [%s] section" % section)
        head, tail = text[:m.end()], text[m.end():]
        nxt = re.search(r"^\[", tail, re.M)
        body, rest = (tail[:nxt.start()], tail[nxt.start():]) if nxt else (tail, "")
        body, n = re.subn(r"^%s\s*=.*$" % re.escape(key), line, body, flags=re.M)
        if n == 0:
            body = line + "\n" + body
        return head + body + rest
    text = set_key(text, "defaults", 'server = "https://127.0.0.1:%d"' % MOCK_PORT)
    text = set_key(text, "credentials", 'username = "%s"' % mock_user)
    text = set_key(text, "daemon", 'allowed_groups = ["denvr"]')
    text = set_key(text, "daemon", 'ca_file = "/etc/denvrd-test/ca.pem"')
    return text


def start_mock(c, src):
    certs = c.path("/etc/denvrd-test")
    sys.path.insert(0, str(src / "tests"))
    import mock_denvr
    mock_denvr.ensure_certs(str(certs))
    os.chmod(certs, 0o755)
    shutil.copy(src / "tests" / "mock_denvr.py", certs / "mock_denvr.py")
    c.sh("systemd-run --unit=%s --quiet /usr/bin/python3 /etc/denvrd-test/mock_denvr.py "
         "--tls --certdir /etc/denvrd-test --host 127.0.0.1 --port %d" % (MOCK_UNIT, MOCK_PORT))
    wait_for(lambda: curl(c, "https://127.0.0.1:%d/_mock/ping" % MOCK_PORT,
                          extra="--cacert /etc/denvrd-test/ca.pem ")[1] == 200,
             20, "the mock upstream in the container")
    return mock_denvr.DEFAULT_USER, mock_denvr.DEFAULT_PASSWORD


def build_options(where, cwd=None, timeout=60):
    """{(name, machine): option} of `meson introspect --buildoptions where`: a build dir's
    values, or with a meson.build the defaults of the source tree."""
    p = subprocess.run(["meson", "introspect", "--buildoptions", str(where)], cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    check(p.returncode == 0, "meson introspect --buildoptions %s: %s" % (where, p.stderr))
    return {(o["name"], o.get("machine", "any")): o for o in json.loads(p.stdout)}


def option_arg(o):
    v = o["value"]
    if isinstance(v, bool):
        v = "true" if v else "false"
    elif isinstance(v, list):
        v = repr(v)   # meson reads a value starting with '[' as a list literal
    return "-D%s=%s" % (o["name"], v)


def build_to_install(build, src, tmp):
    """BUILDDIR when it has prefix /usr (the README's); else a private build in tmp with
    BUILDDIR's compiler and options but prefix /usr, set up and compiled here.  The README's
    other steps need what prefix /usr installs (/usr/share/doc/denvrd/denvr.toml.example,
    units naming /usr/bin/denvrd), and BUILDDIR is meson test's own: never reconfigured."""
    deadline = time.monotonic() + BUILD_SECONDS
    opts = build_options(build)
    prefix = opts[("prefix", "any")]["value"]
    if prefix == "/usr":
        say("installing %s (prefix /usr)" % build)
        return build
    defaults = build_options(src / "meson.build", cwd=src)
    args = [option_arg(o) for k, o in sorted(opts.items())
            if k[1] in ("any", "host") and o["section"] != "directory" and k in defaults
            and o["value"] != defaults[k]["value"]]
    targets = json.loads((build / "meson-info" / "intro-targets.json").read_text())
    cc = next(t["target_sources"][0]["compiler"] for t in targets if t["name"] == "denvrd")
    private = tmp / "build"
    env = dict(os.environ, CC=shlex.join(cc))
    say("%s has prefix %s: a private build with prefix /usr (CC=%s %s)" % (
        build, prefix, env["CC"], " ".join(args)))
    with open(tmp / "build.log", "w") as log:
        for argv in (["meson", "setup", str(private), str(src), "--prefix=/usr", *args],
                     ["meson", "compile", "-C", str(private), "denvrd"]):
            try:
                p = subprocess.run(argv, cwd=src, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p = None
            if p is None or p.returncode != 0:
                log.flush()
                raise Failure("`%s` %s:\n%s" % (
                    shlex.join(argv), "timed out (BUILD_SECONDS %d)" % BUILD_SECONDS if p is None
                    else "exited %d" % p.returncode,
                    (tmp / "build.log").read_text(errors="replace")[-4000:]))
    say("private build compiled in %s" % private)
    return private


def install(c, build):
    """meson install of build (prefix /usr) into the container's root."""
    prefix = build_options(build)[("prefix", "any")]["value"]
    check(prefix == "/usr", "%s has prefix %s, not the README's /usr" % (build, prefix))
    subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--quiet",
                    "--destdir", str(c.root)], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)


def system_wide(c, src, build, mock_user, mock_password):
    readme = (src / "README.md").read_text()
    cmds, _ = readme_block(readme, "**System-wide**")
    say("README system-wide steps: %d lines" % len(cmds))
    enable = "systemctl enable --now denvrd.socket"
    check(unsudo(cmds[-1]) == enable,
          "the README's system-wide block no longer ends with %r: %r" % (enable, cmds[-1]))
    check(c.sh("systemctl is-active network-online.target", check=False).stdout.strip()
          != "active", "network-online.target is active: the test cannot hold it back")
    check("network-online.target" in c.sh("systemctl list-jobs --no-pager").stdout,
          "network-online.target has no pending start job")

    for raw in cmds:
        if raw.startswith("#"):
            if "edit it" in raw:
                conf = c.path("/etc/denvr/denvr.toml")
                conf.write_text(edit_config(conf.read_text(), mock_user))   # mode, group kept
                say("  edited /etc/denvr/denvr.toml as the README says")
            continue
        cmd = unsudo(strip_comment(raw))
        if cmd.startswith("meson setup build --prefix=/usr && meson compile -C build && "):
            say("  %s  -> done before the first boot: meson install -C %s --destdir ROOT" % (
                cmd, build))
            continue
        stdin = None
        if "cat > /etc/credstore/denvr-apikey" in cmd:
            check("# or denvr-password" in raw, "README credstore line changed: %r" % raw)
            cmd = cmd.replace("denvr-apikey", "denvr-password")   # a password login
            stdin = mock_password
        if cmd == "usermod -aG denvr alice":
            cmd = "usermod -aG denvr " + MEMBER
        if cmd == enable:
            enable_step(c, cmd)
            continue
        c.sh(cmd, input=stdin)
        say("  # %s" % cmd)


def enable_step(c, enable):
    """The README's last step, twice.  On the first-booted image the socket is already
    enabled (by the presets) and listening, so `enable --now` changes nothing and the first
    request starts denvrd.service.  Then the socket is disabled and stopped, and the step is
    run again as on an image without presets: enabling and starting the socket must not
    wait for network-online.target either."""
    never_started(c, "before the first request")
    first_request(c, enable)
    st = service_state(c)
    check(st["ActiveState"] == "active" and st["NRestarts"] == "0",
          "denvrd.service after the first request: %s" % st)
    say("  the first request started denvrd.service (socket enabled by the presets)")
    c.sh("systemctl disable --now denvrd.socket")
    state = [c.sh("systemctl %s %s" % (verb, unit), check=False).stdout.strip()
             for verb, unit in (("is-enabled", "denvrd.socket"), ("is-active", "denvrd.socket"),
                                ("is-active", "denvrd.service"))]
    check(state == ["disabled", "inactive", "inactive"],
          "after `systemctl disable --now denvrd.socket`: %s" % state)
    say("  # systemctl disable --now denvrd.socket   (denvrd.service stopped with it)")
    first_request(c, enable)


def first_request(c, enable):
    # One shell: enable, then curl at once, bounded by the 2 s of the issue.
    t = time.monotonic()
    p = c.sh("%s && exec curl -sS --max-time %d -o /dev/null -w '%%{http_code} %%{time_total}' "
             "http://127.0.0.1:3368%s" % (enable, FIRST_REQUEST_SECONDS, GET_SERVERS),
             check=False, timeout=30)
    took = time.monotonic() - t
    say("  # %s; curl: %s (rc %d, %.2f s in all)" % (enable, p.stdout.strip(), p.returncode, took))
    online = c.sh("systemctl is-active network-online.target", check=False).stdout.strip()
    if p.returncode == 28:
        jobs = c.sh("systemctl list-jobs --no-pager", check=False).stdout
        raise Failure("the first request was not answered within %d s of `%s` while "
                      "network-online.target is held back (%s); jobs:\n%s" % (
                          FIRST_REQUEST_SECONDS, enable, online, jobs))
    check(p.returncode == 0, "enable + first request failed (rc %d): %s%s" % (
        p.returncode, p.stdout, p.stderr))
    check(p.stdout.split()[0] == "200", "first request: HTTP %s" % p.stdout)
    check(online != "active", "network-online.target became active; nothing was held back")


def socket_peers(c):
    st = c.sh("stat -c '%a %U %G' /run/denvrd/denvrd.sock").stdout.split()
    check(st == ["660", "denvrd", "denvr"], "/run/denvrd/denvrd.sock is %s" % st)
    rc, code, body = curl(c, "http://localhost" + GET_SERVERS, user=MEMBER,
                          unix="/run/denvrd/denvrd.sock")
    check(rc == 0 and code == 200, "member %s on the socket: rc %d HTTP %d %s" % (
        MEMBER, rc, code, body))
    refused(c, OUTSIDER, "/run/denvrd/denvrd.sock")
    # TCP: the same rule, the uid owning the client's socket (sock_diag)
    rc, code, body = curl(c, "http://127.0.0.1:3368" + GET_SERVERS, user=MEMBER)
    check(rc == 0 and code == 200, "member %s over TCP: rc %d HTTP %d %s" % (MEMBER, rc, code, body))
    refused_tcp(c, OUTSIDER)
    say("  %s served on the socket and over TCP, %s refused on both (EACCES, 403)" % (
        MEMBER, OUTSIDER))


def hardening(c):
    pid = positive_pid(main_pid(c, "denvrd.service"), "denvrd MainPID")
    st = check_hardening(c, pid, "system denvrd", True)
    home = c.sh("ls -A /home").stdout.split()
    check(MEMBER in home, "/home of the container lacks %s: %s" % (MEMBER, home))
    seen = c.sh("nsenter -t %d -m ls -A /home" % pid).stdout.split()
    check(seen == [], "/home in denvrd's mount namespace shows %s" % seen)
    check(st.get("Uid", "").split()[0] == str(c.uid("denvrd")), "denvrd runs as uid %s" %
          st.get("Uid"))
    say("  pid %d: NoNewPrivs 1, Seccomp 2, no capabilities, uid denvrd, /home empty" % pid)
    return pid


NODELAY_PROBE = r"""
import ctypes, os, socket, sys, time
pid = int(sys.argv[1])
c = socket.create_connection(("127.0.0.1", 3368), timeout=10)
me = c.getsockname()
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)

def accepted():
    found = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                continue
        except OSError:
            continue
        n = libc.syscall(438, pidfd, int(fd), 0)   # pidfd_getfd: a copy of denvrd's descriptor
        if n < 0:
            continue
        s = socket.socket(fileno=n)
        try:
            if s.type == socket.SOCK_STREAM and s.family == socket.AF_INET and s.getpeername() == me:
                found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError:
            pass
        finally:
            s.close()
    return found

# Before any request: what denvrd set when it accepted the connection, not a state
# libmicrohttpd switches while it sends (it corks and uncorks around its writes).
deadline = time.monotonic() + 5
found = accepted()
while not found and time.monotonic() < deadline:
    time.sleep(0.05)
    found = accepted()
c.sendall(b"GET /_denvrd/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
assert c.recv(4096).startswith(b"HTTP/1.1 200"), "healthz"
print(found)
"""


def tcp_nodelay(c, pid):
    """The accepted TCP connection has TCP_NODELAY (the socket unit no longer sets NoDelay=;
    denvrd sets it on each accepted TCP connection)."""
    p = c.sh("python3 -c %s %d" % (shlex.quote(NODELAY_PROBE), pid))
    check(p.stdout.strip() == "[1]", "TCP_NODELAY of denvrd's end of a connection: %s%s" % (
        p.stdout, p.stderr))
    say("  denvrd's accepted TCP connection has TCP_NODELAY on")


def journal_fields(c):
    uid = str(c.uid(MEMBER))

    def find():
        es = journal(c, "-u denvrd.service")
        req = [e for e in es if e.get("PATH") == GET_SERVERS and e.get("PEER_UID") == uid]
        login = [e for e in es if e.get("MESSAGE_ID") == MESSAGE_ID_LOGIN]
        return (req, login) if req and login else None
    req, login = wait_for(find, 10, "denvrd's request and login entries in the journal")
    e = req[-1]
    for k in ("REQUEST_ID", "METHOD", "STATUS", "UPSTREAM_STATUS", "DURATION_MS"):
        check(e.get(k), "journal entry lacks %s: %s" % (k, e))
    check(e["METHOD"] == "GET" and e["STATUS"] == "200", "journal entry: %s" % e)
    say("  journal: REQUEST_ID=%s METHOD=%s PATH=%s STATUS=%s PEER_UID=%s; login %s" % (
        e["REQUEST_ID"], e["METHOD"], e["PATH"], e["STATUS"], e["PEER_UID"],
        login[-1]["MESSAGE"]))


def reload(c, pid):
    conf = c.path("/etc/denvr/denvr.toml")
    text, n = re.subn(r'^cluster = "Msc1"$', 'cluster = "NspReload"', conf.read_text(),
                      flags=re.M)
    check(n == 1, "the example's [defaults] cluster line not found")
    conf.write_text(text)
    cur = journal_cursor(c)
    c.sh("systemctl reload denvrd")
    wait_for(lambda: [e for e in journal(c, "-u denvrd.service", cur)
                      if e.get("MESSAGE_ID") == MESSAGE_ID_RELOAD], 10, "the reload entry")
    check(main_pid(c, "denvrd.service") == str(pid), "reload replaced the process")
    rc, code, body = curl(c, "http://127.0.0.1:3368" + GET_SERVERS)
    check(code == 200, "after reload: HTTP %d %s" % (code, body))
    q = [r["path"] for r in mock_requests(c, GET_SERVERS)]
    check(q and "Cluster=NspReload" in q[-1], "after reload upstream got %r" % q[-1:])
    say("  reloaded in place (pid %d); upstream got %s" % (pid, q[-1]))


def watchdog(c, pid):
    d = c.path("/etc/systemd/system/denvrd.service.d")
    d.mkdir(exist_ok=True)
    (d / "watchdog.conf").write_text("[Service]\nWatchdogSec=2s\n")
    c.sh("systemctl daemon-reload && systemctl restart denvrd.service")
    old = positive_pid(main_pid(c, "denvrd.service"), "denvrd MainPID")
    cur = journal_cursor(c)
    c.sh("kill -STOP %d" % old)
    say("  SIGSTOP to denvrd pid %d (WatchdogSec=2s)" % old)

    def restarted():
        now = main_pid(c, "denvrd.service")
        active = c.sh("systemctl is-active denvrd.service", check=False).stdout.strip()
        return now if active == "active" and now not in ("0", str(old)) else None
    new = positive_pid(wait_for(restarted, 30, "the watchdog to restart denvrd"), "new pid")
    es = journal(c, "-u denvrd.service", cur)
    msgs = [e.get("MESSAGE", "") for e in es if e.get("_COMM") == "systemd"]
    check(any("Watchdog timeout" in str(m) for m in msgs),
          "no 'Watchdog timeout' from systemd: %s" % msgs)
    (d / "watchdog.conf").unlink()
    d.rmdir()
    c.sh("systemctl daemon-reload")
    end = journal_cursor(c)
    rc, code, body = curl(c, "http://127.0.0.1:3368" + GET_SERVERS)
    check(code == 200, "after the watchdog restart: HTTP %d %s" % (code, body))
    say("  watchdog killed pid %d, systemd restarted denvrd as pid %d, serving again" % (old, new))
    return cur, end


def clean_stop(c):
    before = len(mock_requests(c, "/api/TokenAuth/LogOut"))
    cur = journal_cursor(c)
    c.sh("systemctl stop denvrd.socket denvrd.service")
    show = dict(l.split("=", 1) for l in c.sh(
        "systemctl show -p Result -p ExecMainCode -p ExecMainStatus -p ActiveState "
        "denvrd.service").stdout.split())
    check(show == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0",
                   "ActiveState": "inactive"}, "after stop: %s" % show)
    after = len(mock_requests(c, "/api/TokenAuth/LogOut"))
    check(after == before + 1, "LogOut requests at the mock: %d before stop, %d after" % (
        before, after))
    check([e for e in journal(c, "-u denvrd.service", cur)
           if e.get("MESSAGE_ID") == MESSAGE_ID_LOGOUT], "no logout entry in the journal")
    check(c.sh("test -e /run/denvrd/denvrd.sock", check=False).returncode == 1,
          "socket file left after stop")
    say("  stopped: exit 0, Result=success, one LogOut at the mock, socket removed")


def per_user(c, src, mock_user, mock_password):
    readme = (src / "README.md").read_text()
    cmds, para = readme_block(readme, "**Per user.**")
    check(cmds == ["systemctl --user enable --now denvrd.socket"],
          "README per-user block: %r" % cmds)
    check("~/.config/denvr.toml" in para and "chmod 600" in para, "README per-user paragraph")
    u = MEMBER
    uid = c.uid(u)
    check(c.sh("systemctl is-active systemd-logind.service", check=False).stdout.strip()
          == "active", "systemd-logind does not run in the container (it needs the system "
          "bus: package dbus)")
    linger = "sudo loginctl enable-linger $USER"
    check("`%s`" % linger in readme[readme.index("**Per user.**"):readme.index("**System-wide**")],
          "the README's per-user part no longer says %s" % linger)
    c.sh(unsudo(linger), env={"USER": u})
    wait_for(lambda: c.sh("test -S /run/user/%d/systemd/private" % uid, check=False)
             .returncode == 0, 20,
             "the user manager of %s" % u)
    # ~/.config/denvr.toml with the credentials, chmod 600 (README).
    conf = ('[defaults]\nserver = "https://127.0.0.1:%d"\n\n[credentials]\nusername = "%s"\n'
            'password = "%s"\n\n[daemon]\nca_file = "/etc/denvrd-test/ca.pem"\n'
            % (MOCK_PORT, mock_user, mock_password))
    c.sh("mkdir -p ~/.config && cat > ~/.config/denvr.toml && chmod 600 ~/.config/denvr.toml",
         user=u, input=conf)
    logouts = len(mock_requests(c, "/api/TokenAuth/LogOut"))
    c.sh(cmds[0], user=u)
    say("  $ %s   (as %s, lingering)" % (cmds[0], u))
    sock = "/run/user/%d/denvrd.sock" % uid
    rc, code, body = curl(c, "http://localhost" + GET_SERVERS, user=u, unix=sock)
    check(rc == 0 and code == 200, "user socket: rc %d HTTP %d %s" % (rc, code, body))
    rc, code, body = curl(c, "http://127.0.0.1:3368" + GET_SERVERS, user=u)
    check(rc == 0 and code == 200, "user unit over TCP: rc %d HTTP %d %s" % (rc, code, body))
    refused(c, OUTSIDER, sock)
    refused_tcp(c, OUTSIDER)
    pid = positive_pid(main_pid(c, "denvrd.service", user=u), "user denvrd MainPID")
    st = check_hardening(c, pid, "user denvrd", False)
    check(st["Uid"].split()[0] == str(uid), "user denvrd runs as %s" % st["Uid"])
    c.sh("systemctl --user stop denvrd.socket denvrd.service", user=u)
    res = c.sh("systemctl --user show -p Result -p ExecMainStatus denvrd.service",
               user=u).stdout.split()
    check(res == ["Result=success", "ExecMainStatus=0"], "user unit after stop: %s" % res)
    check(len(mock_requests(c, "/api/TokenAuth/LogOut")) == logouts + 1,
          "no LogOut from the user unit's stop")
    say("  user denvrd pid %d (uid %d): socket and TCP served, %s refused, NoNewPrivs 1, "
        "Seccomp 2, stopped with LogOut" % (pid, uid, OUTSIDER))


def lease_call(c, method, path, body=None):
    """(HTTP status, JSON or None) of a lease request by MEMBER on the system socket."""
    extra = "-X %s " % method
    if body is not None:
        extra += "-H 'Content-Type: application/json' --data-binary %s " % shlex.quote(
            json.dumps(body))
    rc, code, text = curl(c, "http://localhost" + path, user=MEMBER, unix=SYSTEM_SOCK,
                          extra=extra)
    check(rc == 0, "%s %s: curl rc %d %s" % (method, path, rc, text))
    try:
        return code, json.loads(text)
    except ValueError:
        return code, None


def same_lease(lease, namespace):
    return (isinstance(lease, dict) and lease.get("service") == "servers/virtual"
            and lease.get("id") == LEASE_VM and lease.get("cluster") == LEASE_CLUSTER
            and lease.get("namespace") == namespace)


def lease_restart(c):
    """A lease set on the system unit is kept in $STATE_DIRECTORY (/var/lib/denvrd, 0700)
    and survives `systemctl restart denvrd.service`."""
    import mock_denvr   # start_mock() put tests/ on sys.path
    # The README's configuration names no tenant, so no default namespace: the query names it.
    ns = mock_denvr.TENANT
    path = "/_denvrd/leases/servers/virtual/%s?cluster=%s&namespace=%s" % (
        LEASE_VM, LEASE_CLUSTER, ns)
    uid = c.uid(MEMBER)

    def get_servers():   # GetServer of LEASE_VM at the mock (parameter names in any case)
        return len([r for r in mock_requests(c, "/api/v1/servers/virtual/GetServer?")
                    if re.search(r"[?&]id=%s(&|$)" % re.escape(LEASE_VM), r["path"], re.I)])
    gets = get_servers()
    code, lease = lease_call(c, "PUT", path, {"expires_in": "4h", "action": "destroy"})
    now = time.time()
    check(code == 200 and same_lease(lease, ns), "PUT %s: HTTP %d %s" % (path, code, lease))
    check(lease.get("action") == "destroy" and lease.get("state") == "pending"
          and lease.get("last_error") is None, "the lease: %s" % lease)
    check((lease.get("set_by") or {}).get("uid") == uid, "set_by of the lease: %s (%s is uid %d)"
          % (lease.get("set_by"), MEMBER, uid))
    expires_at = lease.get("expires_at")
    try:
        at = datetime.datetime.strptime(str(expires_at), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        raise Failure("expires_at of the lease is not RFC 3339 UTC: %r" % expires_at)
    check(abs(at - (now + LEASE_SECONDS)) < 120, "expires_at %s is not 4 h from now" % expires_at)
    check(isinstance(lease.get("expires_in"), int) and
          LEASE_SECONDS - 120 < lease["expires_in"] <= LEASE_SECONDS,
          "expires_in of a 4h lease: %r" % lease.get("expires_in"))
    check(get_servers() > gets, "no GetServer of %s upstream before the lease was set"
          % LEASE_VM)
    say("  PUT %s (4h, destroy) as %s: expires_at %s" % (path, MEMBER, expires_at))
    st = c.sh("stat -c '%a %U' /var/lib/denvrd /var/lib/denvrd/leases.json",
              check=False).stdout.split()
    check(st == ["700", "denvrd", "600", "denvrd"], "/var/lib/denvrd and its leases.json "
          "(mode, owner): %s" % st)
    check(LEASE_VM in c.sh("cat /var/lib/denvrd/leases.json").stdout,
          "/var/lib/denvrd/leases.json does not name %s" % LEASE_VM)
    old = positive_pid(main_pid(c, "denvrd.service"), "denvrd MainPID")
    c.sh("systemctl restart denvrd.service")
    new = positive_pid(main_pid(c, "denvrd.service"), "denvrd MainPID after restart")
    check(new != old, "systemctl restart left MainPID %d" % old)
    code, listed = lease_call(c, "GET", "/_denvrd/leases")
    found = [l for l in (listed or {}).get("leases", []) if same_lease(l, ns)]
    check(code == 200 and len(found) == 1, "GET /_denvrd/leases after the restart: HTTP %d %s"
          % (code, listed))
    check(found[0].get("expires_at") == expires_at and found[0].get("action") == "destroy",
          "the lease after the restart: %s (before: expires_at %s, destroy)" % (
              found[0], expires_at))
    say("  restarted (pid %d -> %d): the lease is still listed, expires_at %s, destroy" % (
        old, new, expires_at))
    code, body = lease_call(c, "DELETE", path)
    check(code == 200, "DELETE %s: HTTP %d %s" % (path, code, body))
    code, body = lease_call(c, "DELETE", path)
    check(code == 404, "DELETE %s again: HTTP %d %s" % (path, code, body))
    code, listed = lease_call(c, "GET", "/_denvrd/leases")
    check(code == 200 and not [l for l in (listed or {}).get("leases", []) if same_lease(l, ns)],
          "GET /_denvrd/leases after DELETE: HTTP %d %s" % (code, listed))
    say("  DELETE: 200, then 404; the lease is gone")


# What systemd says when the watchdog step does its job; anything else is a warning.
WATCHDOG_MESSAGES = re.compile(
    r"denvrd\.service: (Watchdog timeout \(limit 2s\)!|Killing process \d+ \(denvrd\) with "
    r"signal SIGABRT\.|Main process exited, code=(killed|dumped), status=6/ABRT|"
    r"Failed with result 'watchdog'\.)$")


def no_unit_warnings(c, start, watchdog_window):
    wd_from, wd_to = watchdog_window
    entries = journal(c, "", start)
    kept, inside, expected = [], False, 0
    for e in entries:
        if inside and e.get("_PID") == "1" and WATCHDOG_MESSAGES.match(str(e.get("MESSAGE"))):
            expected += 1
        else:
            kept.append(e)
        # The cursors name the last entry before the step and the last one of it.
        if e.get("__CURSOR") == wd_from:
            inside = True
        elif e.get("__CURSOR") == wd_to:
            inside = False
    bad = systemd_warnings(kept)
    check(not bad, "systemd warned about denvrd's units:\n  " + "\n  ".join(bad))
    check(expected >= 2, "the watchdog's messages were not found in the journal")
    say("  no systemd warning about denvrd in %d journal entries (%d expected watchdog "
        "messages left out)" % (len(kept), expected))


def run(build, src, tmp):
    c = Container(tmp)
    try:
        c.mount()
        install(c, build)   # the README's install line, before the first boot (issue 20)
        prepare_image(c)
        before_first_boot(c)
        c.boot()
        say("container up (first boot): PID 1 is host pid %d" % c.leader)
        first_boot(c)
        hold_network_online(c)
        start = journal_cursor(c)
        for u in (MEMBER, OUTSIDER):
            c.sh("useradd -m -s /bin/sh %s" % u)
        mock_user, mock_password = start_mock(c, src)
        say("mock upstream up in the container")
        say("system-wide install and configuration (README)")
        system_wide(c, src, build, mock_user, mock_password)
        say("socket peers")
        socket_peers(c)
        say("hardening at run time")
        pid = hardening(c)
        tcp_nodelay(c, pid)
        say("journal fields")
        journal_fields(c)
        say("reload")
        reload(c, pid)
        say("a lease across systemctl restart")
        lease_restart(c)
        say("watchdog")
        window = watchdog(c, pid)
        say("clean stop")
        clean_stop(c)
        say("per-user units (systemctl --user, lingering)")
        per_user(c, src, mock_user, mock_password)
        say("systemd's warnings about denvrd's units")
        no_unit_warnings(c, start, window)
    except Failure:
        try:
            print(c.sh("journalctl --no-pager -n 60 -u denvrd.service -u denvrd.socket",
                       check=False, timeout=10).stdout)
        except Exception:
            pass
        raise
    finally:
        # The cleanup is bounded by its own timeouts; nothing may interrupt it.
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        c.halt()
        c.unmount()


def on_alarm(signum, frame):
    raise GuardTimeout("the test ran over its %d s bound" % GUARD_SECONDS)


def on_term(signum, frame):
    raise SystemExit("terminated by signal %d" % signum)


def main():
    if len(sys.argv) != 3:
        print("usage: %s BUILDDIR SRCDIR" % sys.argv[0], file=sys.stderr)
        return 2
    build, src = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    if os.geteuid() != 0:
        print("FAIL: this test boots a container and must run as root (CI does)")
        return 1
    for tool in ("systemd-nspawn", "nsenter", "setpriv", "mount", "meson", "curl", "openssl"):
        if not shutil.which(tool):
            print("FAIL: %s not found (packages systemd-container, util-linux, curl)" % tool)
            return 1
    # A private mount namespace: the overlay can never outlive this process.
    if os.environ.get("DENVRD_BOOT_UNSHARED") != "1":
        os.environ["DENVRD_BOOT_UNSHARED"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                              sys.executable, os.path.abspath(__file__), str(build), str(src)])
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="denvrd-boot-"))
    rc = 1
    try:
        build = build_to_install(build, src, tmp)   # bounded by BUILD_SECONDS
        signal.alarm(GUARD_SECONDS - 25)   # leaves time for the cleanup below
        run(build, src, tmp)
        rc = 0
    except (Failure, GuardTimeout, SystemExit, subprocess.SubprocessError, OSError) as e:
        print("FAIL: %s" % e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("%s in %.1f s" % ("passed" if rc == 0 else "FAILED", time.monotonic() - T0))
    return rc


if __name__ == "__main__":
    sys.exit(main())
