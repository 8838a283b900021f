// plinthctl apply: sends a YAML definitions file to the daemon.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply feature definitions from a YAML file (idempotent).")

    @Argument(help: "The YAML definitions file ('-' for standard input).")
    var file: String

    @Flag(help: "Validate and show the changes without storing them.")
    var dryRun = false

    @OptionGroup var options: ConnectionOptions

    func run() throws {
        let text = try readInput(file)
        try reportingErrors {
            let connection = try options.connect()
            var request = PBApplyDefinitionsRequest()
            request.yaml = text
            request.dryRun = dryRun
            let result: PBApplyDefinitionsResponse
            do {
                result = try connection.call(Method.applyDefinitions, request, as: PBApplyDefinitionsResponse.self)
            } catch let error as PlinthError where error.code == 3 {
                // The daemon never sees the file, so it cites the document as
                // "<yaml>:LINE:"; the user knows it by its name.
                let name = file == "-" ? "<stdin>" : file
                throw PlinthError(code: error.code, message: error.message.replacingOccurrences(of: "<yaml>:", with: "\(name):"))
            }
            if options.json {
                try printJSON(["project": result.project, "version": result.version, "changed": result.changed,
                               "dry_run": dryRun, "created": result.created, "updated": result.updated, "deleted": result.deleted])
                return
            }
            let verb = dryRun ? "would apply" : "applied"
            print(result.changed ? "\(verb) project \(result.project) version \(result.version)"
                                 : "project \(result.project) is unchanged at version \(result.version)")
            for c in result.created { print("  + \(c)") }
            for u in result.updated { print("  ~ \(u)") }
            for d in result.deleted { print("  - \(d)") }
        }
    }
}
