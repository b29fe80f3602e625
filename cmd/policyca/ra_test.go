package main

import (
	"testing"
	"time"
)

// --expires takes the configuration's durations, days included.
func TestDayDurationFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "90m": 90 * time.Minute, "1.5d": 36 * time.Hour} {
		var d dayDuration
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v, want %v", in, time.Duration(d), err, want)
		}
	}
	for _, in := range []string{"", "seven days", "-1h", "7x", "0", "0d", "200000d", "1e300d", "NaNd"} {
		var d dayDuration
		if err := d.Set(in); err == nil {
			t.Errorf("%q accepted as %v", in, time.Duration(d))
		}
	}
}
