// How a served model's inputs meet its signature when the model names its
// features: every name must match one signature input (as view:feature,
// feature or view__feature) and every input a name, else the version is
// refused with the names that match nothing. (A model without names takes
// its inputs by position; ServedModel checks only the count then.)

import Testing
@testable import PlinthServing

@Suite struct NameMatchingTests {
    /// Signature elements for scalar features "stats:<name>".
    func elements(_ features: [String]) -> (names: [[String]], labels: [String]) {
        (features.map { ["stats:\($0)", $0, "stats__\($0)"] }, features.map { "stats:\($0)" })
    }

    @Test func matchesInAnySpellingAndOrder() throws {
        let (names, labels) = elements(["count", "score", "amount"])
        #expect(try ServedModel.slotsByName(["amount", "stats:count", "stats__score"], names, labels: labels, what: "m:1") == [1, 2, 0])
    }

    @Test func refusesAModelWhoseNamesTheSignatureLacks() {
        let (names, labels) = elements(["count", "score", "amount"])
        #expect {
            try ServedModel.slotsByName(["count", "txn_total", "f9"], names, labels: labels, what: "m:1")
        } throws: { error in
            guard case .failedPrecondition(let message) = error as? ServingError else { return false }
            return message.hasPrefix("m:1 cannot be served")
                && message.contains("no input for 2 of the model's 3 features: txn_total, f9")
                && message.contains("match none of the model's feature names: stats:score, stats:amount")
        }
    }

    @Test func refusesANameThatMatchesTwoInputs() {
        // "count" is the feature name of both stats:count and other:count.
        let names = [["stats:count", "count", "stats__count"], ["other:count", "count", "other__count"]]
        #expect {
            try ServedModel.slotsByName(["count", "other:count"], names, labels: ["stats:count", "other:count"], what: "m:1")
        } throws: { error in
            guard case .failedPrecondition(let message) = error as? ServingError else { return false }
            return message.contains("more than one signature input") && message.contains(": count")
        }
    }
}
