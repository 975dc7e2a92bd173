import Foundation
import Testing

/// The benchmark scripts for files and for the binary's footprint (Docs/BENCHMARKS.md, "Files",
/// "Footprint of the package"), run small so that they keep
/// working: a bad option is one sentence, and a short run of each, on loopback, ends whole. The
/// figures are Docs/BENCHMARKS.md's business, not a test's.
@Suite(.timeLimit(.minutes(3)))
struct BenchScriptTests {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/bench")

    func run(_ script: String, _ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        let process = try PeerProcess(script, [Self.scripts.appendingPathComponent(script).path] + arguments
                                        + ["--binary", PeerProcess.binary.path],
                                      prefix: ["/usr/bin/python3"], runsBinary: false)
        defer { process.stop() }
        let status = try await process.waitForExit(timeout: .seconds(150))
        return (status, process.outputLines.joined(separator: "\n"), process.errorText)
    }

    @Test(arguments: [("offer-folder", ["--size", "0"], "--size must be between 4 and 8192"),
                      ("offer-folder", ["--runs", "99"], "--runs must be between 1 and 20"),
                      ("transfer", ["--size", "0"], "--size must be between 1 and 8192"),
                      ("transfer", ["--floor", "/nonexistent"], "--floor /nonexistent is not an executable levchat-bench"),
                      ("footprint", ["--runs", "0"], "--runs must be between 1 and 20")])
    func badOptionsAreOneSentence(_ script: String, _ arguments: [String], _ says: String) async throws {
        let (status, _, errors) = try await run(script, arguments)
        #expect(status == 2)
        #expect(errors.contains(says) && !errors.contains("Traceback"), "\(errors)")
    }

    @Test func offeringAFolderIsMeasured() async throws {
        let (status, output, errors) = try await run("offer-folder", ["--size", "4", "--runs", "1"])
        #expect(status == 0, "\(errors)")
        #expect(output.contains("run 1: offered in ") && output.contains("archive 4,"), "\(output)")
    }

    /// One run of each measure, of the binary under test: every column has a figure.
    @Test func theFootprintIsMeasured() async throws {
        let (status, output, errors) = try await run("footprint", ["--runs", "1"])
        #expect(status == 0, "\(errors)")
        let row = try #require(output.split(separator: "\n").first { $0.hasSuffix("MB") && $0.contains("levchat-peer") }, "\(output)")
        #expect(row.split(separator: " ").filter { $0.hasSuffix("MB") }.count == 6, "\(row)")
    }

    /// A folder, so that both the file's path (socat and the work alone beside it) and the
    /// folder's are run.
    @Test func aSmallTransferIsMeasured() async throws {
        let (status, output, errors) = try await run("transfer", ["--size", "4", "--skip-scp", "--folder", "--chat-control"])
        #expect(status == 0, "\(errors)")
        #expect(output.contains("levchat-peer") && output.contains("arrived whole and verified: True"), "\(output)\n\(errors)")
        #expect(output.contains("the work alone") && output.contains("% of the work alone"), "\(output)\n\(errors)")
        #expect(output.contains("chat while the work alone moves it instead: "), "\(output)\n\(errors)")
    }
}
