"""
End-to-end encryption as a user runs it: the real C{ftx} command against a
real C{twistd ftx}, and Debian's C{age} as the reference both ways (a file
ftx encrypted opens with C{age -d}; a file C{age} made opens with
C{ftx sget --decrypt}). Exit statuses: a wrong identity is 5, a tampered
or truncated file 6, and neither leaves anything under the final name.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess

import pexpect
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ftx.client.e2e import decryptFile, generateIdentity, readIdentities, writeIdentity
from tests.clitools import FTX, SharedServer, ftx, partialSize, spawn, temporaryFolder, waitFor

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
#: Loud on purpose: the interoperability proof is the point of these tests.
NO_AGE = ("SKIPPED LOUDLY: Debian's reference 'age' tool is not installed (apt-get install -y age; .ci/run "
          "installs it), so interoperability with it cannot be checked here")

SERVER = SharedServer()


@SERVER.serves
class EncryptedCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.root = self.server.rootPath
        self.here = temporaryFolder(self)
        self.env = {"XDG_CONFIG_HOME": str(self.here / "config"), "XDG_STATE_HOME": str(self.here / "state")}
        self.env.pop("FTX_PASSPHRASE", None)
        self.data = os.urandom(200_000)
        (self.here / "data.bin").write_bytes(self.data)
        self.names = []

    def run_(self, *args, **kwargs):
        return ftx(self.server, *args, cwd=self.here, env=dict(self.env, **kwargs.pop("env", {})), **kwargs)

    def onServer(self, name: str):
        self.names.append(name)
        self.addCleanup(lambda: (self.root / name).unlink() if (self.root / name).exists() else None)
        return self.root / name

    def keygen(self, name: str = None) -> str:
        """
        Make an identity (in this process: C{ftx keygen} itself is
        L{test_keygen}'s subject) in C{name}, or where C{keygen} puts it.
        """
        path = self.here / name if name else self.here / "config" / "ftx" / "identity.txt"
        identity = generateIdentity()
        writeIdentity(str(path), identity)
        return str(identity.recipient())

    def requireAge(self) -> None:
        if AGE is None or AGE_KEYGEN is None:
            raise SkipTest(NO_AGE)

    def test_putEncryptedOpensWithAge(self) -> None:
        """
        C{put --encrypt-to} stores C{NAME.age}, which C{age -d -i} decrypts
        byte for byte from the server's own copy; the server never had the
        plaintext.
        """
        self.requireAge()
        recipient = self.keygen()
        stored = self.onServer("data.bin.age")
        result = self.run_("put", "data.bin", "--encrypt-to", recipient)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("encrypted and sent", result.err)
        self.assertNotIn(self.data[:32], stored.read_bytes())
        key = self.here / "config" / "ftx" / "identity.txt"
        opened = subprocess.run([AGE, "-d", "-i", str(key), str(stored)], capture_output=True, timeout=60)
        self.assertEqual(opened.returncode, 0, opened.stderr)
        self.assertEqual(opened.stdout, self.data)

    def test_ageFileOpensWithSget(self) -> None:
        """
        A file C{age -r} made, put as is, comes back as plaintext with
        C{sget --decrypt -i}, named without C{.age}; the key is one
        C{age-keygen} made.
        """
        self.requireAge()
        key = self.here / "age-key.txt"
        subprocess.run([AGE_KEYGEN, "-o", str(key)], check=True, capture_output=True, timeout=30)
        recipient = subprocess.run([AGE_KEYGEN, "-y", str(key)], check=True, capture_output=True, timeout=30)
        made = self.here / "made.age"
        subprocess.run([AGE, "-r", recipient.stdout.decode().strip(), "-o", str(made), str(self.here / "data.bin")],
                       check=True, timeout=60)
        self.onServer("made.age")
        self.assertEqual(self.run_("put", "made.age").returncode, 0)
        os.mkdir(self.here / "out")
        result = self.run_("sget", "made.age", "--decrypt", "-i", str(key), "-o", "out/")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.here / "out" / "made").read_bytes(), self.data)
        self.assertEqual(os.listdir(self.here / "out"), ["made"])

    def test_recipientsFileAndAs(self) -> None:
        """
        C{-R FILE} encrypts to everyone listed; C{--as} names the copy.
        """
        one = self.keygen("one.txt")
        two = self.keygen("two.txt")
        (self.here / "team.txt").write_text("# the team\n{}\n{}\n".format(one, two))
        self.onServer("shared.bin")
        result = self.run_("put", "data.bin", "-R", "team.txt", "--as", "shared.bin")
        self.assertEqual(result.returncode, 0, result.err)
        result = self.run_("sget", "shared.bin", "--decrypt", "-i", "two.txt", "-o", "back.bin")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.here / "back.bin").read_bytes(), self.data)

    def test_wrongIdentity(self) -> None:
        """
        Exit 5 with a clear message; nothing under the final name and no
        hidden leftovers.
        """
        recipient = self.keygen("mine.txt")
        self.keygen("other.txt")
        self.onServer("w.age")
        self.assertEqual(self.run_("put", "data.bin", "-r", recipient, "--as", "w.age").returncode, 0)
        before = sorted(os.listdir(self.here))
        result = self.run_("sget", "w.age", "--decrypt", "-i", "other.txt")
        self.assertEqual(result.returncode, 5, result.err)
        self.assertIn("none of the identities given can decrypt", result.err)
        self.assertEqual(sorted(os.listdir(self.here)), before)

    def test_tamperedAndTruncated(self) -> None:
        """
        The server's copy altered or cut short: exit 6, nothing under the
        final name, no plaintext left anywhere.
        """
        recipient = self.keygen("mine.txt")
        stored = self.onServer("t.age")
        self.assertEqual(self.run_("put", "data.bin", "-r", recipient, "--as", "t.age").returncode, 0)
        good = stored.read_bytes()
        before = sorted(os.listdir(self.here))
        for bad in (good[:-1000] + bytes([good[-1000] ^ 1]) + good[-999:], good[:-20]):
            stored.write_bytes(bad)
            result = self.run_("sget", "t.age", "--decrypt", "-i", "mine.txt")
            self.assertEqual(result.returncode, 6, result.err)
            self.assertIn("does not authenticate", result.err)
            self.assertEqual(sorted(os.listdir(self.here)), before)

    def test_withoutDecryptTheCiphertext(self) -> None:
        recipient = self.keygen()
        stored = self.onServer("c.age")
        self.assertEqual(self.run_("put", "data.bin", "-r", recipient, "--as", "c.age").returncode, 0)
        self.assertEqual(self.run_("sget", "c.age").returncode, 0)
        self.assertEqual((self.here / "c.age").read_bytes(), stored.read_bytes())

    def test_mgetDecrypt(self) -> None:
        recipient = self.keygen()
        (self.here / "two.txt").write_bytes(b"second file")
        for name in ("data.bin", "two.txt"):
            self.onServer(name + ".age")
        self.assertEqual(self.run_("put", "data.bin", "two.txt", "-r", recipient).returncode, 0)
        os.mkdir(self.here / "out")
        result = self.run_("--dir", "out", "mget", "*.age", "--decrypt")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.here / "out" / "data.bin").read_bytes(), self.data)
        self.assertEqual((self.here / "out" / "two.txt").read_bytes(), b"second file")

    def test_passphrase(self) -> None:
        """
        C{--passphrase} takes C{$FTX_PASSPHRASE} (never an argument); none
        at all without a terminal is a usage error. (A wrong one is
        L{tests.test_e2e_format}'s: each try costs age's scrypt second.)
        """
        self.onServer("pw.age")
        result = self.run_("put", "data.bin", "--passphrase", "--as", "pw.age", env={"FTX_PASSPHRASE": "open sesame"})
        self.assertEqual(result.returncode, 0, result.err)
        result = self.run_("sget", "pw.age", "--decrypt", "--passphrase", env={"FTX_PASSPHRASE": "open sesame"})
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.here / "pw").read_bytes(), self.data)
        result = self.run_("put", "data.bin", "--passphrase", "--as", "pw2.age")
        self.assertEqual(result.returncode, 2, result.err)

    def test_passphraseAskedOnTerminal(self) -> None:
        """
        Without C{$FTX_PASSPHRASE}, on a terminal, the passphrase is asked
        twice (not echoed) and the file opens with it.
        """
        self.onServer("asked.age")
        env = dict(self.env, FTX_SERVER=self.server.address)
        child = spawn(["put", "data.bin", "--passphrase", "--as", "asked.age"], self.here, env=env, timeout=60)
        child.expect("Passphrase: ")
        child.sendline("typed secret")
        child.expect("Passphrase again: ")
        child.sendline("typed secret")
        child.expect("encrypted and sent")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        result = self.run_("sget", "asked.age", "--decrypt", "--passphrase", env={"FTX_PASSPHRASE": "typed secret"})
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.here / "asked").read_bytes(), self.data)

    def test_keygen(self) -> None:
        """
        C{keygen} writes C{$XDG_CONFIG_HOME/ftx/identity.txt} readable
        only by the user, prints its recipient, and never overwrites it.
        """
        made = self.run_("keygen")
        self.assertEqual(made.returncode, 0, made.err)
        recipient = made.out.strip()
        key = self.here / "config" / "ftx" / "identity.txt"
        self.assertEqual(stat.S_IMODE(key.stat().st_mode), 0o600)
        self.assertTrue(recipient.startswith("age1"))
        self.assertIn("# public key: " + recipient, key.read_text())
        content = key.read_text()
        result = self.run_("keygen")
        self.assertEqual(result.returncode, 7, result.err)
        self.assertEqual(key.read_text(), content)
        if AGE_KEYGEN is not None:
            derived = subprocess.run([AGE_KEYGEN, "-y", str(key)], capture_output=True, timeout=30)
            self.assertEqual(derived.stdout.decode().strip(), recipient)

    def test_usageErrors(self) -> None:
        """
        No identity to decrypt with, a bad recipient, a passphrase mixed
        with recipients: exit 2 with a message, nothing sent.
        """
        result = self.run_("sget", "x.age", "--decrypt")
        self.assertEqual(result.returncode, 2)
        self.assertIn("ftx keygen", result.err)
        result = self.run_("put", "data.bin", "-r", "age1notakey")
        self.assertEqual(result.returncode, 2)
        self.assertIn("not an age recipient", result.err)
        recipient = self.keygen()
        result = self.run_("put", "data.bin", "-r", recipient, "--passphrase", env={"FTX_PASSPHRASE": "x"})
        self.assertEqual(result.returncode, 2)
        self.assertFalse((self.root / "data.bin.age").exists())

    def test_killedUploadResumes(self) -> None:
        """
        C{ftx put -r} killed mid-upload, then run again: it continues from
        what the server holds (the saved plan makes the same ciphertext)
        and the stored file opens to the original bytes.
        """
        recipient = self.keygen()
        data = os.urandom(48 << 20)
        (self.here / "big.bin").write_bytes(data)
        stored = self.onServer("big.bin.age")
        partial = self.onServer(".big.bin.age.ftx-partial")
        env = dict(os.environ, **self.env)
        env.pop("FTX_SERVER", None)
        for _ in range(3):
            process = subprocess.Popen(
                [FTX, "--server", self.server.address, "put", "big.bin", "-r", recipient, "-q"], cwd=str(self.here),
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                waitFor(lambda: partialSize(partial) > 0 or process.poll() is not None, timeout=30)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
            finally:
                process.wait(timeout=20)
            if not stored.exists() and partialSize(partial) > 0:
                break
            stored.unlink()
        else:
            self.fail("the upload always finished before it could be killed")
        result = self.run_("put", "big.bin", "-r", recipient)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("encrypted and resumed", result.err)
        identities = readIdentities(str(self.here / "config" / "ftx" / "identity.txt"))
        decryptFile(str(stored), str(self.here / "check"), identities)
        self.assertEqual((self.here / "check").read_bytes(), data)
        self.assertEqual(os.listdir(self.here / "state" / "ftx" / "uploads"), [])


    def test_existingOnServerNeedsAPolicy(self) -> None:
        """
        As for plain uploads, a file already on the server is not replaced
        silently: exit 7 without a policy, replaced with C{--overwrite},
        kept with C{--skip}.
        """
        recipient = self.keygen()
        stored = self.onServer("data.bin.age")
        self.assertEqual(self.run_("put", "data.bin", "-r", recipient).returncode, 0)
        first = stored.read_bytes()
        result = self.run_("put", "data.bin", "-r", recipient)
        self.assertEqual(result.returncode, 7, result.err)
        self.assertEqual(stored.read_bytes(), first)
        self.assertEqual(self.run_("put", "data.bin", "-r", recipient, "--skip").returncode, 0)
        self.assertEqual(stored.read_bytes(), first)
        self.assertEqual(self.run_("put", "data.bin", "-r", recipient, "--overwrite").returncode, 0)
        self.assertNotEqual(stored.read_bytes(), first)
