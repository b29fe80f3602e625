//go:build cgo && !nopkcs11

package pkcs11

// Integration tests against a real PKCS#11 module: SoftHSM2. They fail,
// never skip, when SoftHSM2 or pkcs11-tool is missing (softhsmtest says
// what to install). Each test gets its own token via softhsmtest.NewToken,
// which sets SOFTHSM2_CONF, so none of them may run in parallel, and each
// closes every signer it opens (SoftHSM2 reads its configuration only when
// the last crypto11 context has closed and a new one opens).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/signer"
	"github.com/policyca/policyca/softhsm/softhsmtest"
)

// The test binary re-executes itself with these variables set to sign in a
// fresh process: a new module load, a new crypto11 context and a new login
// that can only find the key by its label on the token.
const (
	helperEnv    = "POLICYCA_PKCS11_TEST_HELPER"
	helperURIEnv = "POLICYCA_PKCS11_TEST_URI"
	helperMsgEnv = "POLICYCA_PKCS11_TEST_DIGEST"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "sign" {
		os.Exit(helperSign())
	}
	os.Exit(m.Run())
}

func helperSign() int {
	digest, err := hex.DecodeString(os.Getenv(helperMsgEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := signer.Open(context.Background(), os.Getenv(helperURIEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.(*Signer).Close()
	sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(base64.StdEncoding.EncodeToString(sig))
	return 0
}

func signInChild(t *testing.T, uri string, digest []byte) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=sign", helperURIEnv+"="+uri, helperMsgEnv+"="+hex.EncodeToString(digest))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child signer: %v\n%s", err, stderr.String())
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	return sig
}

func verify(t *testing.T, pub crypto.PublicKey, digest, sig []byte) {
	t.Helper()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig); err != nil {
			t.Fatalf("RSA signature: %v", err)
		}
	default:
		t.Fatalf("unexpected public key %T", pub)
	}
}

func generate(t *testing.T, uri string, spec pki.KeySpec) *Signer {
	t.Helper()
	s, err := GenerateKey(context.Background(), uri, spec)
	if err != nil {
		t.Fatalf("GenerateKey %s: %v", spec, err)
	}
	t.Cleanup(func() { s.(*Signer).Close() })
	return s.(*Signer)
}

var specs = []struct {
	spec   pki.KeySpec
	object string
}{{pki.ECDSAP256, "ec-p256"}, {pki.RSA2048, "rsa-2048"}}

func TestSoftHSMGenerateThenSignInNewProcess(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "gen")
	for _, sp := range specs {
		uri := softhsmtest.KeyURI(tokenURI, sp.object)
		s := generate(t, uri, sp.spec)
		digest := sha256.Sum256([]byte("signed in another process with " + sp.object))
		verify(t, s.Public(), digest[:], signInChild(t, uri, digest[:]))

		ok, err := Exists(context.Background(), uri)
		if !ok || err != nil {
			t.Fatalf("Exists(%s) = %v, %v", sp.object, ok, err)
		}
		if _, err := GenerateKey(context.Background(), uri, sp.spec); !errors.Is(err, ErrKeyExists) {
			t.Fatalf("second GenerateKey %s: %v, want ErrKeyExists", sp.object, err)
		}
	}
	switch pub := generate(t, softhsmtest.KeyURI(tokenURI, "p384"), pki.ECDSAP384).Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve.Params().Name != "P-384" {
			t.Fatalf("curve %s", pub.Curve.Params().Name)
		}
	default:
		t.Fatalf("P-384 key is %T", pub)
	}
	if ok, err := Exists(context.Background(), softhsmtest.KeyURI(tokenURI, "absent")); ok || err != nil {
		t.Fatalf("Exists(absent) = %v, %v", ok, err)
	}
}

// The HSM key as an intermediate CA: pki.NewIntermediate certifies it
// under a software root, then it signs a leaf which verifies to the root.
func TestSoftHSMIntermediateSignsLeaves(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "issuing")
	rootKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.NewRoot(rootKey, pkix.Name{CommonName: "test root"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	for _, sp := range specs {
		t.Run(string(sp.spec), func(t *testing.T) {
			hsmKey := generate(t, softhsmtest.KeyURI(tokenURI, sp.object), sp.spec)
			inter, err := pki.NewIntermediate(root, rootKey, hsmKey.Public(), pkix.Name{CommonName: "hsm " + sp.object}, time.Hour, 0)
			if err != nil {
				t.Fatal(err)
			}
			leafKey, err := pki.GenerateKey(pki.ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(42),
				Subject:      pkix.Name{CommonName: "host.internal"},
				DNSNames:     []string{"host.internal"},
				NotBefore:    time.Now().Add(-time.Minute),
				NotAfter:     time.Now().Add(30 * time.Minute),
				KeyUsage:     x509.KeyUsageDigitalSignature,
				ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, leafKey.Public(), hsmKey)
			if err != nil {
				t.Fatalf("sign leaf with the HSM key: %v", err)
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			inters := x509.NewCertPool()
			inters.AddCert(inter)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "host.internal"}); err != nil {
				t.Fatalf("leaf does not verify: %v", err)
			}
			// And through pki's own issuance path.
			tlsCert, err := pki.IssueTLSServer(inter, hsmKey, leafKey.Public(), []string{"ca.internal"}, nil, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tlsCert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "ca.internal"}); err != nil {
				t.Fatalf("TLS cert does not verify: %v", err)
			}
		})
	}
}

func TestSoftHSMConcurrentSigning(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "concurrent")
	for _, sp := range specs {
		s := generate(t, softhsmtest.KeyURI(tokenURI, sp.object), sp.spec)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 8 {
					d := sha256.Sum256(fmt.Appendf(nil, "%s %d %d", sp.object, g, i))
					sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
					if err != nil {
						errs <- err
						return
					}
					var ok bool
					switch k := s.Public().(type) {
					case *ecdsa.PublicKey:
						ok = ecdsa.VerifyASN1(k, d[:], sig)
					case *rsa.PublicKey:
						ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
					}
					if !ok {
						errs <- fmt.Errorf("%s: goroutine %d: bad signature", sp.object, g)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// pkcs11-tool, a separate program, reads the key attributes back: the
// private keys must be sensitive, never extractable, and sign-only.
func TestSoftHSMKeyAttributes(t *testing.T) {
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Fatalf("pkcs11-tool not found: install the Debian package opensc (%v)", err)
	}
	_, tokenURI := softhsmtest.NewToken(t, "attrs")
	for _, sp := range specs {
		generate(t, softhsmtest.KeyURI(tokenURI, sp.object), sp.spec)
	}
	out, err := exec.Command(tool, "--module", softhsmtest.Module(t), "--token-label", "attrs",
		"--login", "--pin", softhsmtest.UserPIN, "--list-objects", "--type", "privkey").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	objs := parseToolObjects(string(out))
	for _, sp := range specs {
		o, ok := objs[sp.object]
		if !ok {
			t.Fatalf("pkcs11-tool does not list %s:\n%s", sp.object, out)
		}
		for _, want := range []string{"sensitive", "always sensitive", "never extractable", "local"} {
			if !o.access[want] {
				t.Errorf("%s: Access lacks %q: %v", sp.object, want, o.access)
			}
		}
		if o.access["extractable"] {
			t.Errorf("%s is extractable", sp.object)
		}
		if len(o.usage) != 1 || !o.usage["sign"] {
			t.Errorf("%s: Usage %v, want sign only", sp.object, o.usage)
		}
	}
}

type toolObject struct{ access, usage map[string]bool }

// parseToolObjects reads pkcs11-tool --list-objects output: blocks opened
// by "Private Key Object; …" with "label:", "Usage:" and "Access:" lines.
func parseToolObjects(out string) map[string]toolObject {
	objs := map[string]toolObject{}
	var cur *toolObject
	var label string
	flush := func() {
		if cur != nil && label != "" {
			objs[label] = *cur
		}
	}
	set := func(list string) map[string]bool {
		m := map[string]bool{}
		for _, item := range strings.Split(list, ",") {
			if item = strings.TrimSpace(item); item != "" {
				m[item] = true
			}
		}
		return m
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Private Key Object") {
			flush()
			cur, label = &toolObject{}, ""
			continue
		}
		if cur == nil {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch val = strings.TrimSpace(val); name {
		case "label":
			label = val
		case "Usage":
			cur.usage = set(val)
		case "Access":
			cur.access = set(val)
		}
	}
	flush()
	return objs
}

func TestSoftHSMOpenFaults(t *testing.T) {
	conf, tokenURI := softhsmtest.NewToken(t, "faults")
	module := softhsmtest.Module(t)
	wrongPIN := strings.Replace(softhsmtest.KeyURI(tokenURI, "present"), softhsmtest.UserPIN, "wrong-"+softhsmtest.UserPIN, 1)
	check := func(t *testing.T, err error, want error, mention string) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		if !strings.Contains(err.Error(), mention) {
			t.Errorf("error does not name %q: %v", mention, err)
		}
		if strings.Contains(err.Error(), softhsmtest.UserPIN) {
			t.Fatalf("error shows the PIN: %v", err)
		}
	}

	// First, while nothing in this process has logged in to the token, so
	// that the token itself answers CKR_PIN_INCORRECT.
	_, err := GenerateKey(context.Background(), wrongPIN, pki.ECDSAP256)
	check(t, err, ErrBadPIN, "token=faults;object=present")
	_, err = Open(context.Background(), wrongPIN)
	check(t, err, ErrBadPIN, "pin-value=REDACTED")

	generate(t, softhsmtest.KeyURI(tokenURI, "present"), pki.ECDSAP256)
	tests := []struct {
		name, uri string
		want      error
		mention   string
	}{
		{"missing key", softhsmtest.KeyURI(tokenURI, "absent"), ErrKeyNotFound, "object=absent"},
		{"missing token", "pkcs11:token=nope;object=k?module-path=" + module + "&pin-value=" + softhsmtest.UserPIN, ErrTokenNotFound, "token=nope"},
		{"missing module", "pkcs11:token=faults;object=k?module-path=/nonexistent/libpkcs11.so&pin-value=" + softhsmtest.UserPIN, ErrModule, "/nonexistent/libpkcs11.so"},
		// The token is logged in now: the PIN is still checked.
		{"wrong PIN on an open token", wrongPIN, ErrBadPIN, "pin-value=REDACTED"},
		{"missing pin file", strings.Replace(softhsmtest.KeyURI(tokenURI, "present"), "pin-value="+softhsmtest.UserPIN, "pin-source=file:/nonexistent/pin", 1), os.ErrNotExist, "pin-source=file:/nonexistent/pin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.uri)
			check(t, err, tt.want, tt.mention)
			// Through the scheme registry, as the server opens keys.
			_, err = signer.Open(context.Background(), tt.uri)
			check(t, err, tt.want, tt.mention)
		})
	}
	// pin-source works where pin-value does.
	viaFile := strings.Replace(softhsmtest.KeyURI(tokenURI, "present"), "pin-value="+softhsmtest.UserPIN, "pin-source=file:"+softhsmtest.PINFile(conf), 1)
	s, err := Open(context.Background(), viaFile)
	if err != nil {
		t.Fatal(err)
	}
	s.(*Signer).Close()
}

// closeAllSessions kills every session of every slot of the module in this
// process, through a second handle on the same library: what an HSM
// reboot or a network HSM fail-over does to its clients. The library is
// already initialised by crypto11, so Initialize reports
// CKR_CRYPTOKI_ALREADY_INITIALIZED and the handle shares its state.
func closeAllSessions(t *testing.T, module string) {
	t.Helper()
	p := pkcs11.New(module)
	if p == nil {
		t.Fatalf("load %s", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatalf("C_Initialize: %v", err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if err := p.CloseAllSessions(s); err != nil {
			t.Fatalf("C_CloseAllSessions(%d): %v", s, err)
		}
	}
}

// The fault tests use their own manager for a controllable clock (the
// reconnect rate limit) and a count of connections made.
func faultManager() (*manager, *fakeClock, *atomic.Int32) {
	var dials atomic.Int32
	m := newManager(func(cfg tokenConfig) (token, error) {
		dials.Add(1)
		return dialToken(cfg)
	})
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	m.now = clk.Now
	return m, clk, &dials
}

func TestSoftHSMSessionsKilled(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "killed")
	m, _, dials := faultManager()
	s, _, err := m.generate(context.Background(), softhsmtest.KeyURI(tokenURI, "k"), pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSign(t, s)
	closeAllSessions(t, softhsmtest.Module(t))
	// CKR_SESSION_HANDLE_INVALID / CKR_OBJECT_HANDLE_INVALID underneath:
	// the signer reconnects, logs in, finds the key and retries.
	mustSign(t, s)
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections, want the first and one reconnect", n)
	}
	if ok, err := s.Healthy(); !ok {
		t.Fatal(err)
	}
}

// Sessions killed under concurrent load: 16 goroutines released together
// onto dead sessions. Each failed attempt is retried on the one new
// connection, so no caller sees an error.
//
// The sessions are killed between two rounds, not while signatures are in
// flight: SoftHSM2 crashes (SIGSEGV in C_Sign) when C_CloseAllSessions
// races an operation on another thread, a SoftHSM2 bug that real HSMs,
// which report the dead sessions instead, do not share.
func TestSoftHSMSessionsKilledUnderLoad(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "killed-load")
	m, _, dials := faultManager()
	s, _, err := m.generate(context.Background(), softhsmtest.KeyURI(tokenURI, "k"), pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pub := s.Public().(*ecdsa.PublicKey)
	round := func(name string) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, 16*20)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range 20 {
					d := sha256.Sum256(fmt.Appendf(nil, "%s %d/%d", name, g, i))
					sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", name, err)
						continue
					}
					if !ecdsa.VerifyASN1(pub, d[:], sig) {
						errs <- fmt.Errorf("%s: bad signature", name)
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	round("before")
	closeAllSessions(t, softhsmtest.Module(t))
	round("after")
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections, want the first and exactly one reconnect", n)
	}
}

// The token's storage disappears while the CA runs, and comes back.
// Renaming SoftHSM2's token directory is a real fault, not a simulation in
// our code: SoftHSM2 notices that the token's files are gone, so signing
// with the open key handle fails (CKR_OBJECT_HANDLE_INVALID) and a new
// module initialisation fails too (CKR_GENERAL_ERROR), which is what a
// removed or unreachable HSM looks like to a client. (chmod 000 is no
// fault when the tests run as root.) Moving it back makes the same signer
// work again, without reopening it.
func TestSoftHSMTokenGoneAndBack(t *testing.T) {
	conf, tokenURI := softhsmtest.NewToken(t, "vanishing")
	m, clk, _ := faultManager()
	uri := softhsmtest.KeyURI(tokenURI, "k")
	s, _, err := m.generate(context.Background(), uri, pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSign(t, s)

	dir := softhsmtest.TokenDir(conf)
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			os.Rename(dir+".away", dir)
		}
	}()
	err = signErr(s)
	if err == nil {
		t.Fatal("signed with the token gone")
	}
	t.Logf("sign with the token gone: %v", err)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "token=vanishing;object=k") ||
		strings.Contains(err.Error(), softhsmtest.UserPIN) {
		t.Fatalf("sign error: %v", err)
	}
	if ok, err := s.Healthy(); ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Healthy with the token gone = %v, %v", ok, err)
	}
	clk.Advance(DefaultReconnectInterval)
	if err := signErr(s); err == nil {
		t.Fatal("signed with the token still gone")
	}

	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	restored = true
	clk.Advance(DefaultReconnectInterval)
	mustSign(t, s)
	if ok, err := s.Healthy(); !ok {
		t.Fatalf("unhealthy after the token came back: %v", err)
	}
}
