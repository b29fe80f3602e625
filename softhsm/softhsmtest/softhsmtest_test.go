package softhsmtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestNewTokenIsVisibleToTools(t *testing.T) {
	conf, uri := NewToken(t, "helper-test")
	if got := os.Getenv("SOFTHSM2_CONF"); got != conf {
		t.Fatalf("SOFTHSM2_CONF = %q, want %q", got, conf)
	}
	want := "pkcs11:token=helper-test?module-path=" + Module(t) + "&pin-value=" + UserPIN
	if uri != want {
		t.Fatalf("URI = %q, want %q", uri, want)
	}
	if got := KeyURI(uri, "k1"); got != "pkcs11:token=helper-test;object=k1?module-path="+Module(t)+"&pin-value="+UserPIN {
		t.Fatalf("KeyURI = %q", got)
	}
	pin, err := os.ReadFile(PINFile(conf))
	if err != nil || string(pin) != UserPIN+"\n" {
		t.Fatalf("PIN file: %q, %v", pin, err)
	}
	// A separate process (the way an operator would check) sees the token
	// and can log in with the PIN.
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --show-slots: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "helper-test") {
		t.Fatalf("token not listed:\n%s", out)
	}
	entries, err := os.ReadDir(TokenDir(conf))
	if err != nil || len(entries) != 1 {
		t.Fatalf("token dir %s: %v entries, %v", TokenDir(conf), len(entries), err)
	}
}
