"""The response models of the command centre's API: what every route answers, with its
fields, as the published OpenAPI document shows it (one module per resource)."""
