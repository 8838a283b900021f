// plinthctl skew-check: replays sampled online reads of a feature service
// through the offline face and lists every value that differs.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct SkewCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skew-check",
        abstract: "Compare sampled online reads of a feature service with the offline face at the same times.",
        discussion: """
        Needs read_sample_rate > 0 in the daemon's config (samples live in memory since its start). \
        Each difference is a value the model was served that training data for the same entity \
        and moment would not have held. Exits 1 when any value differs.
        """)

    @Option(help: "The feature service.")
    var service: String

    @Option(help: "How many of the latest sampled reads to replay.")
    var sample = 1000

    @OptionGroup var options: ConnectionOptions

    func run() throws {
        guard sample > 0 else { throw ValidationError("--sample must be positive") }
        var differs = false
        try reportingErrors {
            let connection = try options.connect()
            var request = PBSkewCheckRequest()
            request.featureService = service
            request.sample = UInt32(min(sample, Int(UInt32.max)))
            let report = try connection.call(Method.skewCheck, request, as: PBSkewCheckResponse.self)
            differs = !report.differences.isEmpty
            func text(_ has: Bool, _ value: String) -> String { has ? value : "null" }
            if options.json {
                try printJSON(["samples_checked": report.samplesChecked, "values_checked": report.valuesChecked,
                               "differences": report.differences.map { d -> [String: Any] in
                                   ["entity": d.entity, "time": isoTime(micros: d.timeUs), "feature": d.feature,
                                    "online": d.hasOnlineValue ? d.onlineValue : NSNull(),
                                    "offline": d.hasOfflineValue ? d.offlineValue : NSNull()]
                               }])
            } else {
                print("checked \(report.valuesChecked) values of \(report.samplesChecked) sampled reads: \(report.differences.count) differ")
                if differs {
                    printTable(["ENTITY", "READ AT", "FEATURE", "ONLINE", "OFFLINE"], report.differences.map { d in
                        [d.entity, isoTime(micros: d.timeUs), d.feature, text(d.hasOnlineValue, d.onlineValue),
                         text(d.hasOfflineValue, d.offlineValue)]
                    })
                }
            }
        }
        if differs { throw ExitCode(1) }
    }
}
