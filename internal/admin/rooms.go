package admin

// rooms is the API's rooms area.
type rooms struct{ a *API }

func (p rooms) routes() []route { return nil }
