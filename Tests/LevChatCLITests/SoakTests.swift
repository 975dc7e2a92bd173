import Foundation
import Testing

/// The fault soak on the simulated LAN (Soak.swift, Docs/TESTING.md "The fault soak"). In CI: 10
/// faults, every kind at least once. `scripts/soak` runs it with other settings
/// (LEVCHAT_SOAK_FAULTS, _PEERS, _SEED, _INTERVAL_MS, _REPORT) and prints the same report.
@Suite(.serialized, .enabled(if: SimulatedLAN.enabled, SimulatedLAN.skipComment), .timeLimit(.minutes(240)))
struct SoakTests {
    @Test func theRoomKeepsItsPromisesThroughRandomFaults() async throws {
        // A write to a peer that just died must fail, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        let settings = try SoakSettings.fromEnvironment()
        let lan = try await SimulatedLAN(hosts: (1...settings.peers).map { "h\($0)" })
        defer { lan.down() }
        let soak = Soak(settings: settings, lan: lan)
        let chat = Task { await soak.chatLoop() }
        defer { chat.cancel() }

        var failure: String?
        do {
            try await soak.start()
            _ = try await soak.settle(after: .now)
            let schedule = await soak.schedule()
            for (index, kind) in schedule.enumerated() {
                let (what, end) = try await soak.inject(kind)
                let settle = try await soak.settle(after: end)
                let join = try await soak.probe()
                await soak.record(FaultRecord(kind: kind, settle: settle, probeJoin: join))
                await soak.say(String(format: "fault %d/%d %@: %@; settled in %.2f s; the code joined in %.2f s",
                                      index + 1, schedule.count, kind.rawValue, what, Soak.secondsOf(settle), Soak.secondsOf(join)))
            }
            // The end: no more lines; everything written is confirmed and shown to every member
            // that was there when it was written.
            await soak.stopChat()
            _ = try await soak.settle(after: .now, final: true)
        } catch {
            failure = "\(error)\nevery peer's whole output: \(await soak.saveTranscripts())"
        }
        let report = await soak.report(completed: failure == nil, failure: failure.map { String($0.prefix(20_000)) })
        print("\n" + report + "\n")
        if let path = settings.reportPath { try? report.write(toFile: path, atomically: true, encoding: .utf8) }

        let totals = await soak.totals()
        #expect(failure == nil, "\(failure?.split(separator: "\n").first ?? "")")
        #expect(totals.lost == 0 && totals.doubled == 0)
        #expect(totals.confirmed > 0, "the soak confirmed no message at all")
        let kinds = Set(await soak.records.map(\.kind))
        if settings.faults >= FaultKind.allCases.count { #expect(kinds == Set(FaultKind.allCases), "kinds run: \(kinds)") }
    }
}
