package core

import "time"

// RA is a registration authority known to the CA (DESIGN.md shape 2): its
// name is the common name of its client certificates, and it may relay
// requests only for the provisioners listed here.
type RA struct {
	Name         string
	Provisioners []string
	// DisabledAt is zero while the RA is enabled. A disabled RA is refused
	// at once, whatever its certificate says.
	DisabledAt time.Time
	// EnrolledAt is the last enrolment; CertSerial and CertNotAfter
	// describe the newest client certificate issued to the RA.
	EnrolledAt   time.Time
	CertSerial   string
	CertNotAfter time.Time
	CreatedAt    time.Time
	Version      int64
}

// RAToken is a one-time enrolment token. Only a hash of its secret is
// stored; the secret itself is shown once, inside the token string.
type RAToken struct {
	ID     string
	RAName string
	// Provisioners are assigned to the RA when the token is redeemed.
	Provisioners []string
	// SecretHash is SHA-256 of the secret.
	SecretHash []byte
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// UsedAt is set, once, by the enrolment that redeems the token.
	UsedAt time.Time
}
