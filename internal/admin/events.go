package admin

// events is the API's events area.
type events struct{ a *API }

func (p events) routes() []route { return nil }
