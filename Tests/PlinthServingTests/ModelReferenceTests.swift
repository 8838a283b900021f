import Testing
@testable import PlinthServing

// ModelReference itself is tested with its parser, in PlinthRegistryTests.

@Suite struct PredictionIDTests {
    @Test func idsAreULIDsThatSortByTimeThenOrder() {
        let ids = PredictionIDs()
        let a = ids.next(3, now: 1_700_000_000_000)
        let b = ids.next(2, now: 1_700_000_000_000)
        let c = ids.next(1, now: 1_700_000_000_001)
        let all = a + b + c
        #expect(all.allSatisfy { $0.utf8.count == 26 })
        #expect(all == all.sorted())
        #expect(Set(all).count == all.count)
        // The first 10 characters are the millisecond time.
        #expect(a[0].prefix(10) == "01HF7YAT00")
    }

    @Test func formatMatchesTheULIDSpecLayout() {
        // All-zero and all-ones values bracket the alphabet.
        #expect(PredictionIDs.format(millis: 0, high: 0, low: 0) == String(repeating: "0", count: 26))
        #expect(PredictionIDs.format(millis: 0xffff_ffff_ffff, high: .max, low: .max) == "7" + String(repeating: "Z", count: 25))
    }
}
