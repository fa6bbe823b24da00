package upload

import "time"

// SetClock replaces the service's clock; call it before the server starts.
func SetClock(s *Service, now func() time.Time) { s.now = now }
