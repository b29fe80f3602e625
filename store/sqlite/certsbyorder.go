package sqlite

import (
	"context"

	"github.com/policyca/policyca/core"
)

const sqlCertsByOrder = `SELECT ` + certCols + ` FROM certificates WHERE order_id = ? ORDER BY created_at, id`

// GetCertificatesByOrder returns the certificates issued for an order,
// oldest first (index certificates_order).
func (s *Store) GetCertificatesByOrder(ctx context.Context, orderID string) ([]*core.Certificate, error) {
	rows, err := s.r.QueryContext(ctx, sqlCertsByOrder, orderID)
	return collect(rows, err, scanCert)
}
