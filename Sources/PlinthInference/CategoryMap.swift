// How a categorical feature's original values become the codes its trees
// split on. Libraries that train on pandas `category` columns (LightGBM's
// `pandas_categorical`, scikit-learn's HistGradientBoosting with
// `categorical_features="from_dtype"`) never see the values themselves: they
// split on each value's position in the column's category list, and they
// record that list in the model so that prediction can redo the encoding.
// Plinth does the same wherever a value reaches a model (a CSV cell, a served
// feature, a request field), so users give the values they have (store 103,
// "s0"), not codes.

/// The category list of one feature: a value's code is its index in the list.
///
/// A value that is not in the list is scored as missing (NaN), as pandas
/// gives it code -1 and LightGBM and scikit-learn treat that as missing.
public struct CategoryMap: Sendable, Equatable {
    /// The categories in code order. pandas keeps one dtype per column, so a
    /// list is all numbers or all strings.
    public enum Values: Sendable, Equatable {
        case numbers([Double])
        case strings([String])
    }

    public let values: Values
    private let numberCodes: [Double: Int]
    /// String categories are matched by their UTF-8 bytes: pandas compares
    /// categories exactly, and Swift's `String` equality would also match
    /// canonically equivalent spellings ("é" precomposed and decomposed)
    /// that pandas keeps apart. The codes are found through a hash of the
    /// bytes, so a lookup (once per value on the predict path) allocates
    /// nothing: `stringBytes[code]` confirms each candidate.
    private let stringBuckets: [UInt64: [Int32]]
    private let stringBytes: [[UInt8]]

    /// - Throws: `ModelError.invalidField` for a repeated category, or a NaN
    ///   or infinite number (neither can be a pandas category).
    public init(_ values: Values) throws(ModelError) {
        self.values = values
        var numbers = [Double: Int]()
        var buckets = [UInt64: [Int32]]()
        var bytes = [[UInt8]]()
        switch values {
        case let .numbers(list):
            for (code, v) in list.enumerated() {
                guard v.isFinite else {
                    throw .invalidField(format: "model", field: "categories", detail: "category \(code) is \(v)")
                }
                // 0.0 and -0.0 are one key: a dictionary of Doubles already
                // treats them as equal, as pandas does.
                guard numbers.updateValue(code, forKey: v) == nil else {
                    throw .invalidField(format: "model", field: "categories", detail: "category \(v) is listed twice")
                }
            }
        case let .strings(list):
            guard list.count <= Int(Int32.max) else {
                throw .tooLarge(what: "category count", count: list.count, limit: Int(Int32.max))
            }
            for (code, s) in list.enumerated() {
                let utf8 = Array(s.utf8)
                let hash = Self.hash(utf8)
                guard !(buckets[hash] ?? []).contains(where: { bytes[Int($0)] == utf8 }) else {
                    throw .invalidField(format: "model", field: "categories", detail: "category '\(s)' is listed twice")
                }
                buckets[hash, default: []].append(Int32(code))
                bytes.append(utf8)
            }
        }
        numberCodes = numbers
        stringBuckets = buckets
        stringBytes = bytes
    }

    /// The number of categories.
    public var count: Int {
        switch values {
        case let .numbers(list): list.count
        case let .strings(list): list.count
        }
    }

    /// The code of a value given as a number; NaN when it is missing or not a category.
    /// For a list of strings, the number is looked up by its shortest decimal
    /// spelling ("3" for 3.0), which is how a CSV would have written it.
    public func code(number: Double) -> Float {
        if number.isNaN { return .nan }
        switch values {
        case .numbers:
            return numberCodes[number].map(Float.init) ?? .nan
        case .strings:
            return code(utf8: Array(Self.spelling(number).utf8))
        }
    }

    /// The code of a value given as text (a CSV cell, a string feature);
    /// NaN when it is not a category. For a list of numbers, the text is
    /// parsed as a number first ("103", "103.0" and "1.03e2" are one category).
    public func code<Bytes: Collection>(utf8 bytes: Bytes) -> Float where Bytes.Element == UInt8 {
        switch values {
        case .strings:
            guard let candidates = stringBuckets[Self.hash(bytes)] else { return .nan }
            for code in candidates where stringBytes[Int(code)].elementsEqual(bytes) { return Float(code) }
            return .nan
        case .numbers:
            guard let number = Double(String(decoding: bytes, as: UTF8.self)) else { return .nan }
            return code(number: number)
        }
    }

    /// FNV-1a of the bytes: stable, and computed without copying them.
    static func hash<Bytes: Collection>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// A whole number without a fraction ("3"), anything else as Swift prints it.
    static func spelling(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }
}
