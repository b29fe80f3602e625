package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in JSON as a string: Go syntax
// ("36h", "90m") plus a day suffix ("7d", "1.5d").
type Duration time.Duration

var dayRE = regexp.MustCompile(`^\+?([0-9]+\.?[0-9]*|\.[0-9]+)d$`)

// ParseDuration parses Go duration syntax, plus a trailing "d" for days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") && !strings.ContainsAny(s[:len(s)-1], "hmsuµn") {
		// Decimal days, in the forms Go's syntax takes for hours ("1.5",
		// ".5", "1.", "+1"): ParseFloat alone would also take "1e300",
		// "Inf" and "NaN", which overflow a time.Duration.
		if !dayRE.MatchString(s) {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		f, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil || f*float64(24*time.Hour) >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q (days must be a decimal number below 106752)", s)
		}
		return time.Duration(f * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &valueError{raw: b, err: errors.New("duration must be a string such as \"24h\" or \"7d\"")}
	}
	v, err := ParseDuration(s)
	if err != nil {
		return &valueError{raw: b, err: err}
	}
	*d = Duration(v)
	return nil
}

// valueError is a value refused while decoding, with its JSON text, so
// that the error can name the field it was found in (describeJSONError):
// encoding/json does not say where a custom decoder failed.
type valueError struct {
	raw []byte
	err error
}

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }
