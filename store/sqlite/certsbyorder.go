package sqlite

import (
	"context"

	"github.com/policyca/policyca/core"
)

// GetCertificatesByOrder returns the certificates issued for an order,
// oldest first (index certificates_order).
func (s *Store) GetCertificatesByOrder(ctx context.Context, orderID string) ([]*core.Certificate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+certCols+` FROM certificates WHERE order_id = ? ORDER BY created_at, id`, orderID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []*core.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}
