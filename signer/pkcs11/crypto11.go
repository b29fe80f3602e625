//go:build cgo && !nopkcs11

package pkcs11

import (
	"crypto"
	"crypto/elliptic"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/policyca/policyca/pki"
)

// dialToken opens a crypto11 context on the token, logged in, with its
// session pool. crypto11 shares one loaded module between contexts and
// finalises it when the last context closes, which is what makes a
// reconnect see a token that came back.
func dialToken(cfg tokenConfig) (token, error) {
	// crypto11 reports a missing module as "failed to open module" with
	// no reason; dlopen's reason is lost, so say what we can check.
	if _, err := os.Stat(cfg.Module); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrModule, cfg.Module, err)
	}
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:        cfg.Module,
		TokenLabel:  cfg.Token,
		Pin:         cfg.PIN,
		MaxSessions: cfg.MaxSessions,
	})
	if err != nil {
		return nil, dialError(cfg, err)
	}
	return &c11Token{ctx: ctx}, nil
}

func dialError(cfg tokenConfig, err error) error {
	var code pkcs11.Error
	isCode := errors.As(err, &code)
	switch {
	case isCode && (code == pkcs11.CKR_PIN_INCORRECT || code == pkcs11.CKR_PIN_LOCKED ||
		code == pkcs11.CKR_PIN_EXPIRED || code == pkcs11.CKR_PIN_INVALID || code == pkcs11.CKR_PIN_LEN_RANGE):
		return fmt.Errorf("%w (%w)", ErrBadPIN, code)
	case strings.Contains(err.Error(), "could not find PKCS#11 token"):
		// crypto11's own (unexported) error for "no token with this label".
		return fmt.Errorf("%w: no token labelled %q in module %s", ErrTokenNotFound, cfg.Token, cfg.Module)
	case strings.Contains(err.Error(), "failed to open module"),
		strings.Contains(err.Error(), "failed to initialize module"):
		return fmt.Errorf("%w %s: %w", ErrModule, cfg.Module, err)
	}
	return fmt.Errorf("token %q: %w", cfg.Token, err)
}

// requestErrors are PKCS#11 return values that blame the request, not the
// token: reconnecting would not help, so they are returned as they are.
var requestErrors = map[pkcs11.Error]bool{
	pkcs11.CKR_ARGUMENTS_BAD:              true,
	pkcs11.CKR_DATA_INVALID:               true,
	pkcs11.CKR_DATA_LEN_RANGE:             true,
	pkcs11.CKR_MECHANISM_INVALID:          true,
	pkcs11.CKR_MECHANISM_PARAM_INVALID:    true,
	pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED: true,
	pkcs11.CKR_KEY_TYPE_INCONSISTENT:      true,
	pkcs11.CKR_KEY_SIZE_RANGE:             true,
	pkcs11.CKR_FUNCTION_NOT_SUPPORTED:     true,
	pkcs11.CKR_TEMPLATE_INCONSISTENT:      true,
	pkcs11.CKR_TEMPLATE_INCOMPLETE:        true,
	pkcs11.CKR_ATTRIBUTE_VALUE_INVALID:    true,
	pkcs11.CKR_ATTRIBUTE_TYPE_INVALID:     true,
	pkcs11.CKR_DOMAIN_PARAMS_INVALID:      true,
	pkcs11.CKR_CURVE_NOT_SUPPORTED:        true,
}

// classify wraps err in *deviceError when it is the token's or the
// session's failure. Any PKCS#11 code outside requestErrors counts:
// besides the obvious ones (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
// CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR,
// CKR_USER_NOT_LOGGED_IN, CKR_CRYPTOKI_NOT_INITIALIZED) tokens report a
// vanished store as CKR_OBJECT_HANDLE_INVALID or CKR_GENERAL_ERROR, and a
// spurious reconnect costs little while a missed one keeps the CA down.
// crypto11's "closed context" errors count too: they mean another
// goroutine dropped the connection under this call.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var code pkcs11.Error
	if errors.As(err, &code) {
		if requestErrors[code] {
			return err
		}
		return &deviceError{err}
	}
	if msg := err.Error(); strings.Contains(msg, "context is closed") || strings.Contains(msg, "closed Context") {
		return &deviceError{err}
	}
	return err
}

type c11Token struct{ ctx *crypto11.Context }

func (t *c11Token) FindKeyPairs(id, label []byte) ([]crypto.Signer, error) {
	found, err := t.ctx.FindKeyPairs(id, label)
	if err != nil {
		return nil, classify(err)
	}
	keys := make([]crypto.Signer, len(found))
	for i, k := range found {
		keys[i] = c11Key{k}
	}
	return keys, nil
}

func (t *c11Token) GenerateKeyPair(spec pki.KeySpec, id, label []byte) (crypto.Signer, error) {
	pub, priv, err := keyTemplates(id, label)
	if err != nil {
		return nil, err
	}
	var k crypto11.Signer
	switch spec {
	case pki.ECDSAP256:
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256())
	case pki.ECDSAP384:
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P384())
	case pki.RSA2048, pki.RSA3072, pki.RSA4096:
		bits := map[pki.KeySpec]int{pki.RSA2048: 2048, pki.RSA3072: 3072, pki.RSA4096: 4096}[spec]
		k, err = t.ctx.GenerateRSAKeyPairWithAttributes(pub, priv, bits)
	default:
		return nil, spec.Validate()
	}
	if err != nil {
		return nil, classify(err)
	}
	return c11Key{k}, nil
}

// keyTemplates sets what crypto11 would otherwise default, explicitly:
// the private key is a token object, private (login needed), sensitive
// and never extractable, and may sign but not derive, unwrap or decrypt:
// a CA key that can also decrypt is an oracle for anything encrypted to
// it (crypto11 enables decryption for RSA, SoftHSM2 for EC by default).
func keyTemplates(id, label []byte) (pub, priv crypto11.AttributeSet, err error) {
	pub, err = crypto11.NewAttributeSetWithIDAndLabel(id, label)
	if err != nil {
		return nil, nil, err
	}
	priv, err = crypto11.NewAttributeSetWithIDAndLabel(id, label)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range []struct {
		set crypto11.AttributeSet
		typ crypto11.AttributeType
		val bool
	}{
		{pub, crypto11.CkaToken, true},
		{pub, crypto11.CkaVerify, true},
		{pub, crypto11.CkaEncrypt, false},
		{pub, crypto11.CkaWrap, false},
		{priv, crypto11.CkaToken, true},
		{priv, crypto11.CkaPrivate, true},
		{priv, crypto11.CkaSign, true},
		{priv, crypto11.CkaSensitive, true},
		{priv, crypto11.CkaExtractable, false},
		{priv, crypto11.CkaDerive, false},
		{priv, crypto11.CkaUnwrap, false},
		{priv, crypto11.CkaDecrypt, false},
	} {
		if err := a.set.Set(a.typ, a.val); err != nil {
			return nil, nil, err
		}
	}
	return pub, priv, nil
}

func (t *c11Token) Close() error { return t.ctx.Close() }

// c11Key classifies its signing errors for the signer's fault handling.
type c11Key struct{ k crypto11.Signer }

func (k c11Key) Public() crypto.PublicKey { return k.k.Public() }

func (k c11Key) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.k.Sign(r, digest, opts)
	return sig, classify(err)
}
