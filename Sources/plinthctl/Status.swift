// plinthctl status and plinthctl definitions: what the daemon is and holds.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's health and server information.")

    @OptionGroup var options: ConnectionOptions

    func run() throws {
        try reportingErrors {
            let connection = try options.connect()
            let health = try connection.call(Method.health, PBHealthRequest(), as: PBHealthResponse.self)
            let info = try connection.call(Method.serverInfo, PBServerInfoRequest(), as: PBServerInfoResponse.self)
            let serving = health.status == .serving ? "SERVING" : "NOT_SERVING"
            if options.json {
                try printJSON(["status": serving, "server_version": info.serverVersion, "protocol_version": info.protocolVersion,
                               "data_dir": info.dataDir, "uptime_seconds": info.uptimeSeconds,
                               "open_connections": info.openConnections, "requests_total": info.requestsTotal,
                               "map_size_bytes": info.mapSizeBytes, "map_used_bytes": info.mapUsedBytes,
                               "definitions_version": info.definitionsVersion, "listen": info.listenAddresses,
                               "auth_required": info.authRequired, "scopes": connection.hello.scopes])
                return
            }
            printTable(["field", "value"], [
                ["status", serving], ["version", info.serverVersion], ["protocol", "\(info.protocolVersion)"],
                ["data_dir", info.dataDir], ["listen", info.listenAddresses.joined(separator: ", ")],
                ["uptime", "\(info.uptimeSeconds)s"], ["connections", "\(info.openConnections)"],
                ["requests", "\(info.requestsTotal)"],
                ["storage", "\(info.mapUsedBytes / 1024) KiB used of a \(info.mapSizeBytes / 1_048_576) MiB map"],
                ["definitions", "version \(info.definitionsVersion)"],
                ["auth", info.authRequired ? "tokens (this connection: \(connection.hello.scopes.joined(separator: ",")))" : "off"],
            ])
        }
    }
}

struct Definitions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the applied definitions.")

    @Option(help: "Only this project.")
    var project: String?

    @Option(help: ArgumentHelp("Show the project's definitions as they were at this version (0: the current).",
                               discussion: "A version belongs to one project: give --project unless there is only one."))
    var version: UInt64 = 0

    @OptionGroup var options: ConnectionOptions

    func run() throws {
        try reportingErrors {
            let connection = try options.connect()
            var request = PBListDefinitionsRequest()
            request.project = project ?? ""
            request.version = version
            let response = try connection.call(Method.listDefinitions, request, as: PBListDefinitionsResponse.self)
            if options.json {
                print(try response.jsonString())
                return
            }
            var rows: [[String]] = []
            for p in response.projects where p.currentVersion != 0 && p.version != p.currentVersion {
                print("project \(p.project) at version \(p.version) of \(p.currentVersion), applied \(isoTime(micros: p.appliedAtUs))")
            }
            for p in response.projects {
                for e in p.entities { rows.append([p.project, "v\(p.version)", "entity", e.name, "\(e.joinKey): \(typeName(e.type))"]) }
                for v in p.featureViews {
                    let features = v.spec.features.map { "\($0.name): \(typeName($0.type, $0.vectorLength))" }.joined(separator: ", ")
                    rows.append([p.project, "v\(p.version)", "feature_view", v.spec.name,
                                 "[\(v.spec.entities.joined(separator: ","))] ttl=\(v.spec.ttlSeconds)s\(v.spec.offlineOnly ? " offline-only" : "") \(features)"])
                }
                for s in p.featureServices { rows.append([p.project, "v\(p.version)", "feature_service", s.name, s.features.joined(separator: ", ")]) }
            }
            printTable(["project", "version", "kind", "name", "details"], rows)
        }
    }
}
