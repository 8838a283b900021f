// ModelReference: every accepted spelling, and each malformed one refused
// with a message that quotes it and lists the accepted forms.
import Testing
@testable import PlinthRegistry

@Suite struct ModelReferenceTests {
    @Test func parsesEverySpelling() throws {
        #expect(try ModelReference(parsing: "fraud@champion") == ModelReference(name: "fraud", selector: .alias("champion")))
        #expect(try ModelReference(parsing: "fraud/3") == ModelReference(name: "fraud", selector: .version(3)))
        #expect(try ModelReference(parsing: "fraud:3") == ModelReference(name: "fraud", selector: .version(3)))
        #expect(try ModelReference(parsing: "fraud") == ModelReference(name: "fraud", selector: .alias("production")))
        #expect(try ModelReference(parsing: "fraud", version: "7") == ModelReference(name: "fraud", selector: .version(7)))
        #expect(try ModelReference(parsing: "fraud-v2_x@shadow-1") == ModelReference(name: "fraud-v2_x", selector: .alias("shadow-1")))
    }

    @Test func descriptionReadsBack() throws {
        for text in ["fraud@champion", "fraud/3"] {
            #expect(try ModelReference(parsing: text).description == text)
        }
        #expect(try ModelReference(parsing: "fraud:3").description == "fraud/3")
        #expect(try ModelReference(parsing: "fraud").description == "fraud@production")
    }

    @Test(arguments: ["", "@prod", "/3", ":3", "fraud@", "fraud/", "fraud:", "fraud/abc", "fraud:x", "fraud/0",
                      "fraud/-1", "fraud/+3", "fraud/3.0", "fraud/99999999999999999999", "a@b@c", "fraud@a:1",
                      "fraud/1/2", "a@b/3"])
    func refusesMalformedReferences(_ text: String) {
        #expect {
            try ModelReference(parsing: text)
        } throws: { error in
            guard case .invalidArgument(let message) = error as? RegistryError else { return false }
            return message.contains("'\(text)'") && message.contains("name@alias") && message.contains("name/VERSION")
        }
    }

    @Test func namesTheSeparatorsThatClash() {
        #expect(throws: RegistryError.invalidArgument("model reference 'a@b@c' is not valid: it has more than one '@'; \(ModelReference.acceptedForms)")) {
            try ModelReference(parsing: "a@b@c")
        }
        #expect(throws: RegistryError.invalidArgument("model reference 'fraud@a:1' is not valid: it has both '@' and ':'; \(ModelReference.acceptedForms)")) {
            try ModelReference(parsing: "fraud@a:1")
        }
    }

    @Test func refusesAVersionGivenTwice() {
        #expect(throws: RegistryError.self) { try ModelReference(parsing: "fraud:2", version: "3") }
        #expect(throws: RegistryError.self) { try ModelReference(parsing: "fraud@x", version: "3") }
        #expect(throws: RegistryError.self) { try ModelReference(parsing: "fraud", version: "x") }
        #expect(throws: RegistryError.self) { try ModelReference(parsing: "fraud", version: "0") }
    }

    @Test func separateFieldsOfRegistryRequests() throws {
        #expect(try ModelReference(model: "fraud", version: 0, alias: "") == ModelReference(name: "fraud", selector: .alias("production")))
        #expect(try ModelReference(model: "fraud", version: 2, alias: "") == ModelReference(name: "fraud", selector: .version(2)))
        #expect(try ModelReference(model: "fraud", version: 0, alias: "champion") == ModelReference(name: "fraud", selector: .alias("champion")))
        #expect(try ModelReference(model: "fraud/4", version: 0, alias: "") == ModelReference(name: "fraud", selector: .version(4)))
        #expect(try ModelReference(model: "fraud@shadow", version: 0, alias: "") == ModelReference(name: "fraud", selector: .alias("shadow")))
        #expect(throws: RegistryError.self) { try ModelReference(model: "fraud", version: 2, alias: "champion") }
        #expect(throws: RegistryError.self) { try ModelReference(model: "fraud/4", version: 2, alias: "") }
        #expect(throws: RegistryError.self) { try ModelReference(model: "fraud@a", version: 0, alias: "b") }
        #expect(throws: RegistryError.self) { try ModelReference(model: "", version: 0, alias: "") }
    }
}
