package postgres

import (
	"context"

	"github.com/policyca/policyca/core"
)

const sqlCertsByOrder = `SELECT ` + certCols + ` FROM certificates WHERE order_id = $1 ORDER BY created_at, id`

// GetCertificatesByOrder returns the certificates issued for an order,
// oldest first (index certificates_order).
func (s *Store) GetCertificatesByOrder(ctx context.Context, orderID string) ([]*core.Certificate, error) {
	if !validKey(orderID) {
		return nil, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlCertsByOrder, orderID)
	return collect(ctx, rows, err, scanCert)
}
