// ServerConfig settings that reach the storage layer: `online_tree_search`
// is parsed by the config file's one boolean parser and turns the B-tree
// walk off in the environment plinthd opens.
import Foundation
import Logging
import XCTest
@testable import PlinthServer

final class ServerConfigTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "plinth-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func load(_ yaml: String) throws -> ServerConfig {
        let path = dir + "/plinthd.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var config = ServerConfig()
        try config.load(file: path)
        return config
    }

    func testOnlineTreeSearchIsOnByDefaultAndParsedAsABoolean() throws {
        XCTAssertTrue(ServerConfig().onlineTreeSearch)
        XCTAssertFalse(try load("online_tree_search: false\n").onlineTreeSearch)
        XCTAssertTrue(try load("online_tree_search: true\n").onlineTreeSearch)
        XCTAssertThrowsError(try load("online_tree_search: sometimes\n")) {
            XCTAssertTrue("\($0)".contains(":1: 'online_tree_search' must be true or false"), "\($0)")
        }
        XCTAssertThrowsError(try load("online_tree_serch: false\n")) {
            XCTAssertTrue("\($0)".contains("online_tree_search"), "the list of settings names it: \($0)")
        }
    }

    func testTheSettingReachesTheEnvironment() throws {
        for enabled in [true, false] {
            var config = ServerConfig()
            config.dataDir = dir + "/data-\(enabled)"
            config.listen = "127.0.0.1:0"
            config.onlineTreeSearch = enabled
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            let server = try PlinthServer(config: config, logger: logger)
            // stop() waits for the listeners start() binds.
            _ = try server.start()
            defer { server.stop() }
            XCTAssertEqual(server.environment.treeSearchEnabled, enabled)
        }
    }
}
