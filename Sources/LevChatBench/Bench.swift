import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import LevChatCore
import LevChatTransport

/// Load benchmark of the levchat host beside an IRC server (ngIRCd) with the same load shape, one
/// run, loopback only (Docs/BENCHMARKS.md).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "levchat-bench",
        abstract: "Measure the levchat host's relay beside ngIRCd's, on 127.0.0.1.",
        discussion: """
            For each room size, each server gets N members connected from this process (the \
            server runs in its own process): deliveries per second at saturation (each member \
            keeping 8 lines in flight), latency at each offered rate, the server's CPU per \
            delivery and peak RSS. Deliveries are counted at members other than the sender. \
            With --callgrind, user-space instructions per delivery under valgrind instead.
            """,
        subcommands: [TransferFloor.self])

    @Option(parsing: .unconditional, help: "Room sizes, comma-separated (each at least 2, at most 1000).")
    var members: String = "2,10,50"

    @Option(parsing: .unconditional, help: "Seconds of each phase (saturation, and each offered rate).")
    var seconds: Int = 3

    @Option(parsing: .unconditional, help: "Offered rates for the latency phases, messages per second, comma-separated.")
    var rates: String = "100,1000"

    @Option(help: "Servers to measure, comma-separated: levchat, ngircd.")
    var servers: String = "levchat,ngircd"

    @Flag(help: "Count user-space instructions per delivery under valgrind's callgrind instead of timing.")
    var callgrind = false

    @Option(parsing: .unconditional, help: "Lines sent in the two callgrind runs (their difference is what is counted).")
    var callgrindMessages: String = "50,250"

    @Option(help: "The levchat-peer binary (default: the one next to this bench).")
    var peerBinary: String?

    @Flag(help: "Skip the real member (what a member pays per message), measured after the table.")
    var noRealMember = false

    @Option(help: "How this bench's member loops are scheduled: normal, or batch (a delivery that wakes one does not preempt the server; Docs/BENCHMARKS.md).")
    var memberThreads: String = MemberThreads.normal.rawValue

    @Option(help: "The ngIRCd binary.")
    var ngircd: String = "/usr/sbin/ngircd"

    @Option(help: "The ngIRCd configuration template (default: scripts/bench/ngircd.conf of this source tree).")
    var ngircdConfig: String?

    func validate() throws {
        _ = try sizes()
        _ = try offeredRates()
        _ = try serverList()
        _ = try callgrindCounts()
        guard (1...600).contains(seconds) else { throw ValidationError("--seconds takes 1 to 600, not \(seconds)") }
        _ = try memberScheduling()
    }

    func run() async throws {
        // Hundreds of members need as many descriptors here and in the servers this starts.
        Transport.raiseDescriptorLimit()
        let peer = peerBinary.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("levchat-peer")
        let config = URL(fileURLWithPath: ngircdConfig ?? {
            let local = "scripts/bench/ngircd.conf"
            if FileManager.default.fileExists(atPath: local) { return local }
            return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(local).path
        }())
        let makers: [(String, ([String]) throws -> any BenchServer)] = try serverList().map { name in
            switch name {
            case "levchat": (name, { try LevChatServer(binary: peer, wrapper: $0) })
            default: (name, { [ngircd] in try IRCServer(binary: ngircd, configTemplate: config, wrapper: $0) })
            }
        }
        if callgrind {
            try await runCallgrind(makers)
            return
        }
        say("levchat-bench: \(seconds) s per phase; offered rates \(try offeredRates().map(String.init).joined(separator: ", ")) msg/s; 100-byte lines; loopback")
        say("levchat host: \(peer.path); the table's members sign their lines and skip the checks real members make (a real member is measured after it)")
        if try memberScheduling() == .batch {
            let refused = await MemberThreads.makeBatch()
            say("this bench's member loops: SCHED_BATCH (a delivery that wakes one does not preempt the server)"
                + (refused > 0 ? "; \(refused) of them refused it and stay ordinary threads" : ""))
        }
        CryptoCosts.printAll()
        say("")
        let paced = try offeredRates()
        var header = "server        members  deliveries/s  CPU/delivery  server CPU  bench CPU"
        for rate in paced { header += "  p50@\(rate)   p99@\(rate)" }
        say(header + "  peak RSS    RssAnon   join p50")
        for size in try sizes() {
            for (_, make) in makers {
                let server = try make([])
                defer { server.process.stop() }
                let result = try await LoadRun(server: server, members: size, seconds: seconds, rates: paced).run()
                say(row(result))
            }
        }
        if try serverList().contains("levchat"), !noRealMember { try await measureRealMembers(peer) }
    }

    /// What a member pays: a real `levchat-peer join` in each room size (Docs/BENCHMARKS.md).
    private func measureRealMembers(_ peer: URL) async throws {
        let rate = try offeredRates().max() ?? 1000
        say("")
        say("what a member pays: one real member (levchat-peer join --json, verifying every line) among the bench's, \(rate) msg/s offered for \(seconds) s")
        say("members  received  member CPU/message  member CPU   member RssAnon  member peak RSS   host RssAnon  host peak RSS")
        for size in try sizes() {
            let r = try await MemberCostRun(binary: peer, size: size, rate: rate, seconds: seconds).run()
            var line = String(format: "%7d  %8d  %15.1f µs  %8.0f %%  %10.1f MiB  %11.1f MiB  %9.1f MiB  %9.1f MiB", r.members, r.received,
                              r.memberCPUMicrosPerMessage, r.memberCPUPercent, r.memberPrivateMiB, r.memberPeakMiB,
                              r.hostPrivateMiB, r.hostPeakMiB)
            if r.received < r.offered { line += "   (\(r.offered - r.received) of \(r.offered) lines did not reach the real member)" }
            say(line)
        }
    }

    private func row(_ r: LoadRun.Result) -> String {
        var line = String(format: "%-12@  %7d  %12.0f  %9.2f µs  %8.0f %%  %7.0f %%", r.server as NSString, r.members,
                          r.deliveriesPerSecond, r.cpuMicrosPerDelivery, r.hostCPUPercent, r.generatorCPUPercent)
        var notes: [String] = []
        for p in r.paced {
            line += String(format: "  %6.2f ms  %6.2f ms", p.p50, p.p99)
            if p.achieved < Double(p.offered) * 0.95 { notes.append(String(format: "%d msg/s offered, %.0f sent (bench-bound)", p.offered, p.achieved)) }
            if p.lost > 0 { notes.append("\(p.lost) deliveries missing at \(p.offered) msg/s") }
        }
        line += String(format: "  %6.1f MiB  %5.1f MiB  %6.1f ms", r.peakRSSMiB, r.privateMiB, r.joinP50)
        if r.generatorBound { notes.append("saturation limited by this bench's CPU, not the server's") }
        return line + (notes.isEmpty ? "" : "   (" + notes.joined(separator: "; ") + ")")
    }

    private func runCallgrind(_ makers: [(String, ([String]) throws -> any BenchServer)]) async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/valgrind") else {
            throw BenchError.missing("valgrind is not installed (apt-get install valgrind)")
        }
        let counts = try callgrindCounts()
        say("levchat-bench --callgrind: user-space instructions per delivery, (I(\(counts.many) lines) - I(\(counts.few) lines)) / deliveries")
        say("server        members  instructions/delivery")
        for size in try sizes() {
            for (name, make) in makers {
                do {
                    let perDelivery = try await CallgrindRun(members: size, messages: counts, makeServer: make).instructionsPerDelivery()
                    say(String(format: "%-12@  %7d  %21.0f", name as NSString, size, perDelivery))
                } catch {
                    say(String(format: "%-12@  %7d  %21@", name as NSString, size, "n/a" as NSString) + "   (\(error))")
                }
            }
        }
    }

    private func sizes() throws -> [Int] {
        // An empty item ("10,,50", "10,") is a typo to point out, not nothing.
        let values = members.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 2 && ($0 ?? 0) <= 1000 }) else {
            throw ValidationError("--members takes room sizes from 2 to 1000 separated by commas, like 2,10,50; not '\(members)'")
        }
        return values.compactMap { $0 }
    }

    private func offeredRates() throws -> [Int] {
        let values = rates.isEmpty ? [] : rates.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 100_000 }) else {
            throw ValidationError("--rates takes messages per second from 1 to 100000 separated by commas, like 100,1000; not '\(rates)'")
        }
        return values.compactMap { $0 }
    }

    private func memberScheduling() throws -> MemberThreads {
        guard let value = MemberThreads(rawValue: memberThreads) else {
            throw ValidationError("--member-threads takes batch or normal, not '\(memberThreads)'")
        }
        return value
    }

    private func serverList() throws -> [String] {
        let names = servers.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, names.allSatisfy({ $0 == "levchat" || $0 == "ngircd" }) else {
            throw ValidationError("--servers takes levchat, ngircd or both separated by a comma; not '\(servers)'")
        }
        return names
    }

    private func callgrindCounts() throws -> (few: Int, many: Int) {
        let values = callgrindMessages.split(separator: ",", omittingEmptySubsequences: false).compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == 2, callgrindMessages.filter({ $0 == "," }).count == 1, values[0] >= 0, values[1] > values[0] else {
            throw ValidationError("--callgrind-messages takes two line counts, the second larger, like 50,250; not '\(callgrindMessages)'")
        }
        return (values[0], values[1])
    }

}

/// CPU per join handshake (each side, in this process) and per chat signature and verification.
enum CryptoCosts {
    static func printAll() {
        let code = RoomCode.random()
        let credentials = RoomCredentials(code: code, grant: RoomGrant.random())
        let rounds = 200
        var joinerTime = Duration.zero, hostTime = Duration.zero
        let clock = ContinuousClock()
        for _ in 0..<rounds {
            var joiner = ClientHandshake(credentials: RoomCredentials(code: code, grant: nil))
            var host = HostHandshake(code: code, grant: credentials.grant!)
            var t = clock.now
            let challenge = try! host.receiveHello(joiner.helloBytes)
            hostTime += clock.now - t
            t = clock.now
            let auth = try! joiner.receiveChallenge(challenge)
            joinerTime += clock.now - t
            t = clock.now
            let (ok, _) = try! host.receiveAuth(auth)
            hostTime += clock.now - t
            t = clock.now
            _ = try! joiner.receiveAuthOK(ok)
            joinerTime += clock.now - t
        }
        let identity = PeerIdentity()
        let room = credentials.grant!.roomID
        let text = String(repeating: "x", count: 100)
        var t = clock.now
        var chats: [Chat] = []
        for seq in 1...rounds { chats.append(Chat(signedBy: identity, room: room, seq: seq, name: "bench", text: text)) }
        let signTime = clock.now - t
        let key = Base64.encode(identity.publicKey)
        t = clock.now
        let verified = chats.filter { $0.isSigned(room: room, key: key) }.count
        let verifyTime = clock.now - t
        func micros(_ d: Duration) -> String { String(format: "%.0f µs", Double(d.nanoseconds) / 1e3 / Double(rounds)) }
        say("CPace join handshake CPU: joiner \(micros(joinerTime)), host \(micros(hostTime)) (mean of \(rounds))")
        say("Ed25519 per 100-byte chat: sign \(micros(signTime)), verify \(micros(verifyTime)) (\(verified)/\(rounds) verified)")
        printRecordCosts(chats: chats, key: key, grant: credentials.grant!)
    }

    /// What one relayed line costs past the socket, each step on its own: a member encoding and
    /// sealing its chat, the host opening it (decode and range checks included), the host encoding
    /// and sealing the msg it broadcasts, a member opening that.
    private static func printRecordCosts(chats: [Chat], key: String, grant: RoomGrant) {
        let rounds = 20_000
        let linkKey = SymmetricKey(size: .bits256)
        var sealer = RecordSealer(key: linkKey)
        let hostNode = NodeID.random()
        var broadcastSealer = BroadcastSealer(grant: grant, epoch: 1, host: hostNode)
        let records = (0..<rounds).map { i in
            let chat = chats[i % chats.count]
            return ChatRecord(seq: i + 1, id: chat.id, from: chat.name, text: chat.text, time: 1_700_000_000_000, key: key, sig: chat.sig)
        }
        var linkRecords: [[UInt8]] = [], broadcastRecords: [[UInt8]] = []
        linkRecords.reserveCapacity(rounds)
        broadcastRecords.reserveCapacity(rounds)
        let sealClock = ContinuousClock()
        var start = sealClock.now
        for i in 0..<rounds { linkRecords.append(try! sealer.seal(WireMessage.chat(chats[i % chats.count]).encoded())) }
        let chatSealTime = sealClock.now - start
        start = sealClock.now
        for record in records { broadcastRecords.append(try! broadcastSealer.seal(WireMessage.msg(record).encoded())) }
        let msgSealTime = sealClock.now - start
        let clock = ContinuousClock()
        var host = RecordReader(opener: RecordOpener(key: linkKey))
        var opened = 0
        var t = clock.now
        for record in linkRecords {
            if case .chat = try! record.withUnsafeBytes({ bytes throws(LinkError) in try host.message(fromRecord: bytes) }) { opened += 1 }
        }
        let linkTime = clock.now - t
        var member = RecordReader(opener: RecordOpener(key: SymmetricKey(size: .bits256)))
        member.expectBroadcasts(BroadcastOpener(grant: grant, epoch: 1, host: hostNode))
        t = clock.now
        for record in broadcastRecords {
            if case .msg = try! record.withUnsafeBytes({ bytes throws(LinkError) in try member.message(fromRecord: bytes) }) { opened += 1 }
        }
        let broadcastTime = clock.now - t
        func nanos(_ d: Duration) -> String { String(format: "%.2f µs", Double(d.nanoseconds) / 1e3 / Double(rounds)) }
        say("a 100-byte line encoded and sealed: a chat at its sender \(nanos(chatSealTime)), its msg at the host \(nanos(msgSealTime))")
        say("a 100-byte line opened and decoded: a chat at the host \(nanos(linkTime)), a msg at a member \(nanos(broadcastTime)) (\(opened)/\(2 * rounds))")
    }
}

/// One line on stdout, unbuffered: each row shows as soon as it is measured, also into a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
