import Foundation
import LevChatCore
import Testing

/// Online guessing (Docs/THREAT-MODEL.md): an address that keeps failing the code is refused for a
/// while; everyone else gets in as before.
@Suite(.timeLimit(.minutes(2)))
struct GuessingLimitTests {
    @Test func aHundredWrongCodesFromOneAddressDoNotKeepAnotherOut() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let wrong = String(room.code.hasPrefix("Z") ? "Y" + room.code.dropFirst() : "Z" + room.code.dropFirst())
        var refusals: [String: Int] = [:]
        for _ in 0..<100 {
            let attacker = try RawClient(port: room.port, source: "127.0.0.2")
            guard case .error(let info)? = try? attacker.handshake(code: wrong) else {
                Issue.record("an attempt was not refused")
                continue
            }
            refusals[info.code, default: 0] += 1
        }
        #expect(refusals == ["auth": 5, "limited": 95])
        // Once limited, even the right code from that address waits its turn.
        let late = try RawClient(port: room.port, source: "127.0.0.2")
        guard case .error(let info)? = try late.handshake(code: room.code) else { Issue.record("not refused"); return }
        #expect(info.code == "limited" && info.message.contains("try again in"))

        // Someone at another address gets in as usual, and talks.
        let bob = try await room.join("bob")
        bob.send("in despite the noise")
        try await room.host.waitFor("bob's line") { $0.isMessage(from: "bob", text: "in despite the noise") }
        // The host's user was told once, naming the address.
        let notices = room.host.events.filter { $0.type == "notice" && ($0["message"] ?? "").contains("failed to prove the room code") }
        #expect(notices.count == 1 && (notices.first?["message"] ?? "").contains("127.0.0.2"))
    }
}
