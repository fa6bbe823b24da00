package admin

// accounts is the API's accounts area.
type accounts struct{ a *API }

func (p accounts) routes() []route { return nil }
