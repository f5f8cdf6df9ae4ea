"""
Defaults a user sets once: the config file (C{~/.config/ftx/config.toml},
or under C{$XDG_CONFIG_HOME}) and C{~/.netrc} (or C{$NETRC}).

Each setting is taken from the first of: the command line's flags, the
environment (C{FTX_SERVER}, C{FTX_USER}, C{FTX_PASSWORD}), the config
file, C{~/.netrc}. The config file may hold::

    server = "files.example.com:1234"   # any --server form
    user = "alice"
    tls = true                          # as --tls
    cafile = "~/certs/ca.pem"           # used when TLS is on
    checksum = "xxh128"                 # auto, sha1 or xxh128
    conflict = "skip"                   # overwrite, rename or skip
    compress = "auto"                   # auto, zstd or none (as --compress)
    limit-rate = "12.5MB/s"             # as --limit-rate; a bare number is bytes/s, 0 no limit

A file that cannot be read or holds something else is a one-line usage
error naming it, never a silent default.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from ftx.cli.status import UsageError

__all__ = ["Settings", "configPath", "loadConfig", "netrcLogin"]

_CHOICES = {
    "checksum": ("auto", "sha1", "xxh128"),
    "conflict": ("overwrite", "rename", "skip"),
    "compress": ("auto", "zstd", "none"),
}
_TYPES = {
    "server": str, "user": str, "tls": bool, "cafile": str, "checksum": str, "conflict": str, "compress": str,
    "limit-rate": (str, int, float),
}


def configPath() -> str:
    """
    Where the config file is looked for (it need not exist).
    """
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "ftx", "config.toml")


def loadConfig(path: Optional[str] = None) -> Dict[str, Any]:
    """
    The settings of the config file, checked; C{{}} when there is none.

    @raise UsageError: the file cannot be read, is not TOML, or holds an
        unknown key or a value of the wrong kind.
    """
    path = path or configPath()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise UsageError("cannot read the config file {}: {}".format(path, e.strerror))
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the same parser, published as tomli
        import tomli as tomllib

    try:
        settings = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError("the config file {} is not valid TOML: {}".format(path, e))
    for key, value in settings.items():
        if key not in _TYPES:
            raise UsageError("the config file {} has an unknown setting {!r} (known: {})".format(
                path, key, ", ".join(sorted(_TYPES))))
        expected = _TYPES[key]
        # TOML's true and false are Python bools, which are also ints.
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            kind = "rate" if key == "limit-rate" else _TYPES[key].__name__
            raise UsageError("the config file {}: {} must be a {}".format(path, key, kind))
        if key in _CHOICES and value not in _CHOICES[key]:
            raise UsageError("the config file {}: {} must be one of {}".format(path, key, ", ".join(_CHOICES[key])))
    if "cafile" in settings:
        settings["cafile"] = os.path.expanduser(settings["cafile"])
    if "limit-rate" in settings:
        settings["limit-rate"] = _rate(path, settings["limit-rate"])
    return settings


def _rate(path: str, value) -> int:
    """
    Bytes a second from the C{limit-rate} setting, read as C{--limit-rate}
    reads its argument (L{ftx._io.ratelimit.parseRate}): C{0} for no limit.
    """
    from ftx._io.ratelimit import parseRate

    try:
        return parseRate(str(value))
    except ValueError as e:
        raise UsageError("the config file {}: limit-rate: {}".format(path, e))


def netrcLogin(host: str, user: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """
    C{(login, password)} for C{host} from C{~/.netrc} (C{$NETRC}), or
    C{(None, None)}. Given C{user}, a password is returned only if the
    entry is for that user.

    @raise UsageError: the file exists but cannot be read or parsed (the
        standard library also refuses a file others can read that holds
        passwords).
    """
    chosen = os.environ.get("NETRC")
    path = chosen or os.path.join(os.path.expanduser("~"), ".netrc")
    if not host or not os.path.exists(path):
        return None, None
    import netrc  # only for those who have one

    try:
        # The default ~/.netrc is read with no argument, which makes the
        # standard library refuse it when others can read its passwords.
        entry = (netrc.netrc(chosen) if chosen else netrc.netrc()).authenticators(host)
    except netrc.NetrcParseError as e:
        raise UsageError("cannot use {}: {}".format(path, e.msg))
    except OSError as e:
        raise UsageError("cannot read {}: {}".format(path, e.strerror))
    if entry is None:
        return None, None
    login, _, password = entry
    if user is not None and login and login != user:
        return None, None
    return login or user, password or None
