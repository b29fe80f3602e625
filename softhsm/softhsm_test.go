package softhsm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	b, err := Config("/var/lib/policyca/tokens")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"directories.tokendir = /var/lib/policyca/tokens\n",
		"objectstore.backend = file\n",
		"log.level = ERROR\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %q:\n%s", want, b)
		}
	}
	for _, bad := range []string{"relative/tokens", "/a\nlog.level = DEBUG"} {
		if _, err := Config(bad); err == nil {
			t.Errorf("Config(%q) accepted", bad)
		}
	}
}

func TestWriteConfigAndInitToken(t *testing.T) {
	dir := t.TempDir()
	conf, err := WriteConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if conf != filepath.Join(dir, ConfName) || TokenDir(conf) != filepath.Join(dir, TokenDirName) {
		t.Fatalf("paths: %s, %s", conf, TokenDir(conf))
	}
	if st, err := os.Stat(TokenDir(conf)); err != nil || !st.IsDir() {
		t.Fatalf("token dir: %v", err)
	}
	if err := InitToken(t.Context(), conf, "pkg-test", "so-pin-1234", "user-pin-5678"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("softhsm2-util", "--show-slots")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pkg-test") {
		t.Fatalf("token not visible: %v\n%s", err, out)
	}
	// softhsm2-util refuses short PINs; the error must say why.
	if err := InitToken(t.Context(), conf, "short", "1", "2"); err == nil {
		t.Fatal("short PINs accepted")
	}
}

func TestFindModule(t *testing.T) {
	m, err := FindModule()
	if err != nil {
		t.Fatalf("%v (SoftHSM2 is required for policyca's tests)", err)
	}
	if !filepath.IsAbs(m) {
		t.Fatalf("module path %q not absolute", m)
	}
}

// The shell script is what operators run; check it end to end, including
// its refusal to create a duplicate label.
func TestInitTokenScript(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	out, err := exec.Command("./init-token.sh", state, "script-test", "so-pin-1234", "user-pin-5678").CombinedOutput()
	if err != nil {
		t.Fatalf("init-token.sh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "export SOFTHSM2_CONF="+filepath.Join(state, ConfName) {
		t.Fatalf("output:\n%s", out)
	}
	m, _ := FindModule()
	wantURI := "pkcs11:token=script-test?module-path=" + m + "&pin-source=file:" + filepath.Join(state, "script-test.user-pin")
	if lines[1] != wantURI {
		t.Fatalf("URI line %q, want %q", lines[1], wantURI)
	}
	pin, err := os.ReadFile(filepath.Join(state, "script-test.user-pin"))
	if err != nil || string(pin) != "user-pin-5678\n" {
		t.Fatalf("pin file %q, %v", pin, err)
	}
	if st, _ := os.Stat(filepath.Join(state, "script-test.user-pin")); st.Mode().Perm() != 0o600 {
		t.Fatalf("pin file mode %v", st.Mode())
	}
	conf, err := os.ReadFile(filepath.Join(state, ConfName))
	if err != nil || !strings.Contains(string(conf), "directories.tokendir = "+filepath.Join(state, TokenDirName)+"\n") {
		t.Fatalf("config: %v\n%s", err, conf)
	}
	out, err = exec.Command("./init-token.sh", state, "script-test").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already exists") {
		t.Fatalf("duplicate label: %v\n%s", err, out)
	}
	if out, err := exec.Command("./init-token.sh", state, "bad label").CombinedOutput(); err == nil {
		t.Fatalf("bad label accepted:\n%s", out)
	}
}
