// FieldNumbers: the field numbers of every message a hand-written codec
// reads or writes, named as in Proto/. FieldNumberTests checks each
// against the .proto files and the generated code, and fails when a
// message gains a field its hand codec does not know: a renumbered or new
// field cannot be skipped in silence.
//
// Each enum lists every field of its message, hand-coded or not, so the
// test can tell "known and deliberately handled" from "new".

/// plinth.v1.Request, the envelope of every request frame.
public enum RequestField {
    public static let id = 1
    public static let method = 2
    public static let body = 3
}

/// plinth.v1.Response, the envelope of every answer frame.
public enum ResponseField {
    public static let id = 1
    public static let status = 2
    public static let body = 3
    public static let more = 4
}

/// plinth.v1.Status.
public enum StatusField {
    public static let code = 1
    public static let message = 2
}

/// plinth.v1.Column: one named, typed column of values.
public enum ColumnField {
    public static let name = 1
    public static let type = 2
    public static let vectorLength = 3
    public static let int64Values = 4
    public static let float32Values = 5
    public static let float64Values = 6
    public static let boolValues = 7
    public static let stringValues = 8
    public static let bytesValues = 9
    public static let nullRows = 10
}

/// plinth.v1.GetOnlineFeaturesRequest.
public enum GetOnlineFeaturesRequestField {
    public static let features = 1
    public static let featureService = 2
    public static let entities = 3
    public static let fullFeatureNames = 4
    public static let compactEventTimes = 5
}

/// plinth.v1.FeatureColumn.
public enum FeatureColumnField {
    public static let values = 1
    public static let statuses = 2
    public static let eventTimeUs = 3
    public static let eventTimesFrom = 4
}

/// plinth.v1.GetOnlineFeaturesResponse.
public enum GetOnlineFeaturesResponseField {
    public static let features = 1
}

/// plinth.v1.PredictRequest.
public enum PredictRequestField {
    public static let modelName = 1
    public static let modelVersion = 2
    public static let id = 3
    public static let inputs = 4
    public static let returnFeatures = 5
    public static let margin = 6
    public static let parameters = 7
}

/// plinth.v1.PredictResponse.
public enum PredictResponseField {
    public static let modelName = 1
    public static let modelVersion = 2
    public static let id = 3
    public static let rows = 4
    public static let outputs = 5
    public static let predictionIds = 6
    public static let features = 7
    public static let firstRow = 8
    public static let parameters = 9
}
