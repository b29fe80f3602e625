package acme

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

// keyMode says how a POST resource identifies its signer (RFC 8555 §6.2).
type keyMode int

const (
	// keyKID: "kid" must be the URL of a valid account of this provisioner.
	keyKID keyMode = iota
	// keyJWK: "jwk" carries the key (newAccount).
	keyJWK
	// keyEither: revokeCert accepts an account (kid) or the certificate's
	// own key (jwk).
	keyEither
)

// request is a POST that went through the whole JWS chain.
type request struct {
	prov *provisioner
	msg  *jws.Message
	// key is the key that verified the signature.
	key *jose.JSONWebKey
	// acct is the signing account (nil when signed with a jwk).
	acct    *core.Account
	payload []byte
}

// postAsGet reports whether the request is a POST-as-GET (empty payload).
func (r *request) postAsGet() bool { return len(r.payload) == 0 }

type postHandler func(w http.ResponseWriter, r *http.Request, req *request) error

// post serves a JWS-authenticated POST resource: each step of the chain is
// a small method below, run in order, the first failure answering.
func (s *Server) post(mode keyMode, h postHandler) http.Handler {
	return s.withProvisioner(func(w http.ResponseWriter, r *http.Request) {
		req, err := s.authenticate(w, r, mode)
		if err == nil {
			err = h(w, r, req)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authenticate runs the JWS chain and returns the verified request.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, mode keyMode) (*request, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, core.Errorf(core.KindMethodNotAllowed, "method %s not allowed, use POST", r.Method)
	}
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	msg, err := jws.Parse(body)
	if err != nil {
		return nil, err
	}
	if err := s.redeemNonce(r.Context(), msg); err != nil {
		return nil, err
	}
	if err := s.checkURL(r, msg); err != nil {
		return nil, err
	}
	req := &request{prov: provFrom(r.Context()), msg: msg}
	if err := s.lookupKey(r.Context(), req, mode); err != nil {
		return nil, err
	}
	if req.payload, err = msg.Verify(req.key); err != nil {
		return nil, err
	}
	if req.acct != nil {
		if err := checkSigner(req.prov, msg.Header.KID, req.acct); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// checkContentType requires exactly application/jose+json (§6.2).
func checkContentType(r *http.Request) error {
	ct := strings.TrimSpace(r.Header.Get("Content-Type"))
	if !strings.EqualFold(ct, "application/jose+json") {
		return core.Errorf(core.KindUnsupportedMediaType, "Content-Type must be application/jose+json")
	}
	return nil
}

// readBody reads at most MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.maxBody {
		return nil, core.Errorf(core.KindPayloadTooLarge, "request body exceeds %d bytes", s.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, core.Errorf(core.KindPayloadTooLarge, "request body exceeds %d bytes", s.maxBody)
		}
		return nil, core.Wrap(core.KindMalformed, err, "cannot read request body")
	}
	return body, nil
}

// redeemNonce consumes the protected header's nonce; a nonce is good once.
func (s *Server) redeemNonce(ctx context.Context, msg *jws.Message) error {
	if msg.Header.Nonce == "" {
		return core.Errorf(core.KindBadNonce, "JWS has no nonce")
	}
	if err := s.nonces.Redeem(ctx, msg.Header.Nonce); err != nil {
		if core.IsKind(err, core.KindBadNonce) {
			return err
		}
		return core.Wrap(core.KindServerInternal, err, "cannot check nonce")
	}
	return nil
}

// requestURL is the URL the client must have signed: BaseURL and the
// request's path and query, never the Host header, which a proxy may
// rewrite.
func (s *Server) requestURL(r *http.Request) string {
	return s.base + r.URL.RequestURI()
}

// checkURL compares the protected "url" with the request URL (§6.4).
func (s *Server) checkURL(r *http.Request, msg *jws.Message) error {
	if want := s.requestURL(r); msg.Header.URL != want {
		return core.Errorf(core.KindUnauthorized, "JWS url %q does not match the request URL %q", msg.Header.URL, want)
	}
	return nil
}

// lookupKey finds the key that must have signed the request. For a kid
// it only loads the account and its key: whether that account may sign
// here (its provisioner, its status) is checkSigner's, once the signature
// has verified (§6.2), so that a request anyone can forge with an account
// URL learns nothing about the account.
func (s *Server) lookupKey(ctx context.Context, req *request, mode keyMode) error {
	h := req.msg.Header
	switch {
	case mode == keyJWK && h.JWK == nil:
		return core.Errorf(core.KindMalformed, "this resource requires a jwk, not a kid")
	case mode == keyKID && h.JWK != nil:
		return core.Errorf(core.KindMalformed, "this resource requires a kid (account URL), not a jwk")
	case h.JWK != nil:
		req.key = h.JWK
		return nil
	}
	acct, err := s.accountByKID(ctx, req.prov, h.KID)
	if err != nil {
		return err
	}
	key, err := s.keys.parse(acct.ID, acct.KeyJWK)
	if err != nil {
		return core.Wrap(core.KindServerInternal, err, "stored account key is unreadable")
	}
	req.acct, req.key = acct, key
	return nil
}

// accountByKID loads the account a kid names: an account URL of this
// provisioner or of another (refused by checkSigner, after the signature).
// A kid that names no account answers accountDoesNotExist (§7.3.1): there
// is no key to verify the request with. Nothing else about the account is
// checked here.
func (s *Server) accountByKID(ctx context.Context, p *provisioner, kid string) (*core.Account, error) {
	if kid == "" {
		return nil, core.Errorf(core.KindMalformed, "JWS has no kid")
	}
	id := accountIDOf(p, kid)
	if id == "" {
		for _, q := range s.provs {
			if id = accountIDOf(q, kid); id != "" {
				break
			}
		}
	}
	if id == "" {
		return nil, core.Errorf(core.KindAccountDoesNotExist, "kid is not an account URL of this directory")
	}
	return s.getAccount(ctx, id)
}

// accountIDOf returns the account ID of kid if it is an account URL of p,
// "" otherwise.
func accountIDOf(p *provisioner, kid string) string {
	id, ok := strings.CutPrefix(kid, p.prefix+"/account/")
	if !ok || strings.Contains(id, "/") {
		return ""
	}
	return id
}

// checkSigner refuses a verified request whose account may not sign here:
// one of another provisioner, named by another provisioner's URL, or no
// longer valid (§7.3.6).
func checkSigner(p *provisioner, kid string, acct *core.Account) error {
	switch {
	case acct.Provisioner != p.Name:
		return core.Errorf(core.KindUnauthorized, "account belongs to provisioner %q", acct.Provisioner)
	case kid != p.accountURL(acct.ID):
		return core.Errorf(core.KindUnauthorized, "kid is not this directory's URL of the account")
	case acct.Status != core.StatusValid:
		return core.Errorf(core.KindUnauthorized, "account is %s", acct.Status)
	}
	return nil
}

// requireOwner refuses access to another account's resource.
func requireOwner(req *request, accountID string) error {
	if req.acct == nil || req.acct.ID != accountID {
		return core.Errorf(core.KindUnauthorized, "resource belongs to another account")
	}
	return nil
}

// requirePostAsGet refuses a payload on a read-only resource.
func requirePostAsGet(req *request) error {
	if !req.postAsGet() {
		return core.Errorf(core.KindMalformed, "this resource only accepts POST-as-GET (empty payload)")
	}
	return nil
}
