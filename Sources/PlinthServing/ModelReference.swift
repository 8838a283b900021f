// Serving names models with the registry's one reference parser (see
// PlinthRegistry's ModelReference: `name@alias`, `name/3`, `name:3`, or a
// bare `name` for `name@production`). The alias keeps the name visible to
// the server's files that import PlinthServing alone.
public import PlinthRegistry

public typealias ModelReference = PlinthRegistry.ModelReference
