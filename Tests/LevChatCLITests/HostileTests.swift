import Foundation
import Testing

/// The hostile peer against the real binaries (`HostileRun`): a short seeded run in CI; a long one
/// by `scripts/hostile --cases N --seed S` (Docs/TESTING.md, "The hostile peer").
@Suite(.timeLimit(.minutes(60)))
struct HostileTests {
    @Test func aHostilePeerCrashesNothingForgesNothingAndCostsTheHonestNothing() async throws {
        let environment = ProcessInfo.processInfo.environment
        let cases = environment["LEVCHAT_HOSTILE_CASES"].flatMap(Int.init) ?? 300
        let seed = environment["LEVCHAT_HOSTILE_SEED"].flatMap(UInt64.init) ?? 16
        let report = try await HostileRun(cases: cases, seed: seed).run()
        print(report)
        if let file = environment["LEVCHAT_HOSTILE_REPORT"] { try "\(report)\n".write(toFile: file, atomically: true, encoding: .utf8) }
    }
}
