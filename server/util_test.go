package server

import (
	"errors"
	"io"
	"strconv"

	"github.com/go-acme/lego/v4/lego"
	xacme "golang.org/x/crypto/acme"
)

type legoClientT struct{ *lego.Client }

func ioCopy(w io.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) }

func itoa(i int) string { return strconv.Itoa(i) }

func asACMEError(err error, target **xacme.Error) bool { return errors.As(err, target) }
