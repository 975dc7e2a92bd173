import Foundation
import LevChatTestSupport
import Testing

/// The fault soak (issue 10, Docs/TESTING.md "The fault soak"): K peers on the simulated LAN chat
/// at a steady rate while R random faults hit them one after another. After each fault it waits
/// for the room to settle and checks the promises of Docs/MIGRATION.md; it stops at the first
/// violation. `scripts/soak` runs it with the settings below; `SoakTests` runs 10 faults in CI.
struct SoakSettings: Sendable {
    var faults = 10
    var peers = 4
    var seed = UInt64.random(in: 1...999_999)
    /// Each peer writes a line about this often (±25 %).
    var lineInterval: Duration = .milliseconds(800)
    /// Where to write the report too (besides standard output).
    var reportPath: String?
    /// How long a fault may take to settle before that counts as a violation.
    var settleLimit: Duration = .seconds(90)

    static func fromEnvironment() throws -> SoakSettings {
        let environment = ProcessInfo.processInfo.environment
        var settings = SoakSettings()
        func number(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = environment[key] else { return nil }
            guard let value = Int(text), range.contains(value) else { throw SoakViolation("\(key) must be a number in \(range), not \(text)") }
            return value
        }
        settings.faults = try number("LEVCHAT_SOAK_FAULTS", 0...10_000) ?? settings.faults
        settings.peers = try number("LEVCHAT_SOAK_PEERS", 3...8) ?? settings.peers
        if let seed = try number("LEVCHAT_SOAK_SEED", 1...Int.max) { settings.seed = UInt64(seed) }
        if let ms = try number("LEVCHAT_SOAK_INTERVAL_MS", 50...60_000) { settings.lineInterval = .milliseconds(ms) }
        settings.reportPath = environment["LEVCHAT_SOAK_REPORT"]
        return settings
    }
}

struct SoakViolation: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum FaultKind: String, CaseIterable, Sendable {
    /// SIGKILL a peer (the host half the time) and start it again under the same name.
    case kill
    /// SIGSTOP a peer (the host half the time) for 2–15 s, then SIGCONT.
    case stop
    /// Pull one machine's cable for 2–10 s.
    case link
    /// Cut the LAN in two for 3–10 s, then heal it.
    case split
    /// Crash one machine's avahi-daemon (the host's half the time), start it again 1–3 s later.
    case avahi
    /// A new member joins by the code; once the room has K + 2 members, the oldest joiner leaves
    /// with /quit first (and must exit 0: everything it typed confirmed).
    case joiner
}

/// One run of `levchat-peer` in the soak, and what it showed, read incrementally from its output.
final class SoakInstance {
    let name: String
    let host: String
    let label: String
    let process: PeerProcess
    var scanned = 0
    var entered: ContinuousClock.Instant?
    var counter = 0
    var nextLine = ContinuousClock.now
    /// Lines written to it: text → when.
    var sent: [String: ContinuousClock.Instant] = [:]
    /// Its own lines it saw echoed by a host.
    var confirmed: Set<String> = []
    /// Every message text it showed, with how many times.
    var shown: [String: Int] = [:]
    var lateShown = 0
    var members: [Event] = []
    var histories: [[LogEntry]] = []
    var retired = false

    init(name: String, host: String, number: Int, process: PeerProcess) {
        self.name = name
        self.host = host
        self.label = number == 1 ? name : "\(name)#\(number)"
        self.process = process
    }

    var isLive: Bool { process.isRunning && !retired }
}

struct LogEntry: Equatable, CustomStringConvertible {
    let seq: Int
    let from: String
    let text: String
    var description: String { "\(seq) \(from): \(text)" }
}

/// What one fault did and how long the room took to settle after it.
struct FaultRecord {
    let kind: FaultKind
    let settle: Duration
    let probeJoin: Duration
}

actor Soak {
    let settings: SoakSettings
    let lan: SimulatedLAN
    let hostNames: [String]
    private(set) var code = ""
    private var random: SplitMix
    private var instances: [SoakInstance] = []
    private var runs: [String: Int] = [:]
    private var joiners = 0
    private var probes = 0
    /// Every line written, with its writer and when: text → (instance label, time).
    private var written: [String: (sender: SoakInstance, at: ContinuousClock.Instant)] = [:]
    private var confirmedAt: [String: ContinuousClock.Instant] = [:]
    private var doubled: [String] = []
    private var chatting = true
    private var joinRetries: [String] = []
    private(set) var records: [FaultRecord] = []
    private var lastHost: String?
    private let started = ContinuousClock.now

    init(settings: SoakSettings, lan: SimulatedLAN) {
        self.settings = settings
        self.lan = lan
        self.hostNames = lan.hosts
        self.random = SplitMix(seed: settings.seed)
    }

    func say(_ text: String) {
        let seconds = Soak.secondsOf(.now - started)
        FileHandle.standardOutput.write(Data((String(format: "soak %6.1fs  ", seconds) + text + "\n").utf8))
    }

    // MARK: the room

    func start() async throws {
        let first = try lan.peer("p1", on: hostNames[0], ["create", "--name", "p1", "--json"])
        let room = try await first.waitFor("room event", timeout: .seconds(30)) { $0.type == "room" }
        code = try #require(room["code"])
        runs["p1"] = 1
        instances.append(SoakInstance(name: "p1", host: hostNames[0], number: 1, process: first))
        scan()
        for index in 1..<settings.peers {
            _ = try await join(name: "p\(index + 1)", on: hostNames[index])
        }
        say("room \(code): \(instances.map { "\($0.name)@\($0.host)" }.joined(separator: " "))")
    }

    /// `join CODE` until it is in (a join can meet the room between hosts and exit 66, or find its
    /// own old name not yet dropped and exit 67); gives up after a minute.
    private func join(name: String, on host: String) async throws -> SoakInstance {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let number = (runs[name] ?? 0) + 1
            runs[name] = number
            let process = try lan.peer(number == 1 ? name : "\(name)#\(number)", on: host,
                                       ["join", code, "--name", name, "--json", "--timeout", "20"])
            let instance = SoakInstance(name: name, host: host, number: number, process: process)
            instances.append(instance)
            while instance.entered == nil && process.isRunning && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                scan()
            }
            if instance.entered != nil { return instance }
            let why = process.events.last { $0.type == "closed" }.map { "\($0["reason"] ?? ""): \($0["message"] ?? "")" }
            process.killNow()
            instance.retired = true
            guard ContinuousClock.now < deadline else {
                throw SoakViolation("the code does not join: \(name) on \(host) not in the room after a minute\n\(process.transcript)")
            }
            joinRetries.append("\(name): \(why ?? "no answer")")
            say("  join of \(name) on \(host) ended (\(why ?? "no answer")); again")
            try await Task.sleep(for: .seconds(1))
        }
    }

    private var live: [SoakInstance] { instances.filter(\.isLive) }

    // MARK: chat and reading

    /// Writes each live member's next line when it is due and reads everyone's new output, every
    /// 100 ms, until `stopChat`.
    func chatLoop() async {
        while !Task.isCancelled {
            scan()
            if chatting { writeDueLines() }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    func stopChat() { chatting = false }

    private func writeDueLines() {
        let now = ContinuousClock.now
        for instance in live where instance.entered != nil && instance.nextLine <= now {
            instance.counter += 1
            let text = "\(instance.label).\(instance.counter)"
            instance.sent[text] = now
            written[text] = (instance, now)
            instance.process.send(text)
            // Not from the seeded generator: how many lines were written by now depends on timing,
            // and the faults drawn from it must not.
            let jitter = Double.random(in: 0.75...1.25)
            instance.nextLine = now + settings.lineInterval * jitter
        }
    }

    /// Reads what each instance printed since the last scan.
    private func scan() {
        let now = ContinuousClock.now
        for instance in instances {
            let lines = instance.process.outputLines
            guard instance.scanned < lines.count else { continue }
            for line in lines[instance.scanned...] {
                guard let event = Event(line: line) else { continue }
                switch event.type {
                case "entered":
                    if instance.entered == nil { instance.entered = now }
                case "message":
                    guard let text = event["text"] else { continue }
                    instance.shown[text, default: 0] += 1
                    if instance.shown[text] == 2 { doubled.append("\(instance.label) showed \(text) twice") }
                    if event.bool("late") == true && event.bool("history") != true { instance.lateShown += 1 }
                    if event["from"] == instance.name, instance.sent[text] != nil, !instance.confirmed.contains(text) {
                        instance.confirmed.insert(text)
                        if confirmedAt[text] == nil { confirmedAt[text] = now }
                    }
                case "members":
                    instance.members.append(event)
                case "history":
                    let messages = event.fields["messages"] as? [[String: Any]] ?? []
                    instance.histories.append(messages.map {
                        LogEntry(seq: ($0["seq"] as? NSNumber)?.intValue ?? -1, from: $0["from"] as? String ?? "", text: $0["text"] as? String ?? "")
                    })
                default: break
                }
            }
            instance.scanned = lines.count
        }
    }

    // MARK: faults

    /// The schedule: every kind once in a shuffled order, then kinds at random.
    func schedule() -> [FaultKind] {
        var kinds = FaultKind.allCases.shuffled(using: &random)
        while kinds.count < settings.faults { kinds.append(FaultKind.allCases.randomElement(using: &random)!) }
        return Array(kinds.prefix(settings.faults))
    }

    private func seconds(_ range: ClosedRange<Double>) -> Duration {
        .milliseconds(Int((Double.random(in: range, using: &random) * 1000).rounded()))
    }

    /// A live member, the host half the time.
    private func victim() -> SoakInstance {
        let members = live
        if Bool.random(using: &random), let host = lastHost, let instance = members.first(where: { $0.name == host }) { return instance }
        return members.randomElement(using: &random)!
    }

    /// Injects one fault and returns what it did and when it was over (the instant settling is
    /// measured from).
    func inject(_ kind: FaultKind) async throws -> (String, ContinuousClock.Instant) {
        switch kind {
        case .kill:
            let target = victim()
            let role = target.name == lastHost ? " (host)" : ""
            target.process.signal(SIGKILL)
            _ = try await target.process.waitForExit(timeout: .seconds(10))
            let pause = seconds(0.2...2)
            try await Task.sleep(for: pause)
            let end = ContinuousClock.now
            _ = try await join(name: target.name, on: target.host)
            return ("SIGKILL \(target.label)\(role), restarted after \(pause)", end)
        case .stop:
            let target = victim()
            let role = target.name == lastHost ? " (host)" : ""
            let pause = seconds(2...15)
            target.process.signal(SIGSTOP)
            try await Task.sleep(for: pause)
            target.process.signal(SIGCONT)
            return ("SIGSTOP \(target.label)\(role) for \(pause)", .now)
        case .link:
            let machine = victim().host
            let pause = seconds(2...10)
            try await lan.link(machine, up: false)
            try await Task.sleep(for: pause)
            try await lan.link(machine, up: true)
            let who = live.filter { $0.host == machine }.map(\.label).joined(separator: ", ")
            return ("cable of \(machine) (\(who)) out for \(pause)", .now)
        case .split:
            var machines = hostNames.shuffled(using: &random)
            machines = Array(machines.prefix(Int.random(in: 1..<hostNames.count, using: &random)))
            let pause = seconds(3...10)
            try await lan.split(machines)
            try await Task.sleep(for: pause)
            try await lan.heal()
            return ("LAN split (\(machines.sorted().joined(separator: " ")) | rest) for \(pause)", .now)
        case .avahi:
            let machine = victim().host
            let pause = seconds(1...3)
            try await lan.avahi(machine, "kill")
            try await Task.sleep(for: pause)
            try await lan.avahi(machine, "start")
            return ("avahi-daemon of \(machine) killed, started \(pause) later", .now)
        case .joiner:
            var what = ""
            if live.count >= settings.peers + 2, let oldest = live.first(where: { $0.name.hasPrefix("j") }) {
                oldest.process.send("/quit")
                let status = try await oldest.process.waitForExit(timeout: .seconds(30))
                scan()
                guard status == 0 else {
                    throw SoakViolation("\(oldest.label) left with /quit and exited \(status)\n\(oldest.process.transcript)")
                }
                oldest.retired = true
                what = "\(oldest.label) left with /quit; "
            }
            joiners += 1
            let name = "j\(joiners)"
            let machine = hostNames.randomElement(using: &random)!
            let end = ContinuousClock.now
            _ = try await join(name: name, on: machine)
            return (what + "\(name) joined on \(machine)", end)
        }
    }

    // MARK: settling and the checks

    /// Waits until the room has settled after a fault that ended at `end`: every live peer in, one
    /// host that all agree on with every live peer as a member, every line written before `end`
    /// confirmed, every line confirmed over a second ago shown to every member that was in the
    /// room when it was written, and every live peer's log the same over the part they all hold.
    /// Throws a violation when that does not happen within `settleLimit`, or at once for a
    /// message shown twice.
    func settle(after end: ContinuousClock.Instant, final: Bool = false) async throws -> Duration {
        let deadline = end + settings.settleLimit
        var reason = ""
        while ContinuousClock.now < deadline {
            scan()
            if !doubled.isEmpty { throw SoakViolation("doubled: " + doubled.prefix(10).joined(separator: "; ")) }
            if let why = try await unsettled(end: end, final: final) {
                reason = why
                try await Task.sleep(for: .milliseconds(250))
                continue
            }
            return .now - end
        }
        throw SoakViolation("not settled \(settings.settleLimit) after the fault: \(reason)\n" + transcripts())
    }

    /// Every run's whole output, for after a violation: the directory it went to.
    func saveTranscripts() -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-soak-\(settings.seed)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for instance in instances {
            let file = directory.appendingPathComponent("\(instance.label)-on-\(instance.host).log")
            let text = instance.process.outputLines.joined(separator: "\n") + "\n--- stderr:\n" + instance.process.errorText + "\n"
            try? text.write(to: file, atomically: true, encoding: .utf8)
        }
        return directory.path
    }

    private func unsettled(end: ContinuousClock.Instant, final: Bool) async throws -> String? {
        let members = live
        for instance in members where instance.entered == nil { return "\(instance.label) has not entered" }
        // A peer of this soak never exits on its own: only by SIGKILL (then a new run replaces it)
        // or /quit (then it is retired).
        for instance in instances where !instance.retired && !instance.process.isRunning
            && instances.last(where: { $0.name == instance.name }) === instance {
            throw SoakViolation("\(instance.label) exited by itself\n\(instance.process.transcript)")
        }
        for instance in members {
            let waiting = instance.sent.filter { $0.value <= end && !instance.confirmed.contains($0.key) }
            if !waiting.isEmpty {
                return "\(instance.label): \(waiting.count) lines written before the fault ended not confirmed yet (\(waiting.keys.sorted().prefix(5).joined(separator: ", ")))"
            }
        }
        let cutoff = final ? ContinuousClock.now : ContinuousClock.now - .seconds(1)
        for (text, at) in confirmedAt where at <= cutoff {
            let writtenAt = written[text]!.at
            for instance in members where instance.entered.map({ $0 < writtenAt }) == true && instance.shown[text] == nil {
                return "\(instance.label) has not shown \(text), confirmed \(ContinuousClock.now - at) ago"
            }
        }
        // Ask every live peer for its roster and log; a frozen one would not answer, but after a
        // fault none is frozen.
        let before = members.map { ($0.members.count, $0.histories.count) }
        for instance in members {
            instance.process.send("/who")
            instance.process.send("/history 200")
        }
        let asked = ContinuousClock.now
        while ContinuousClock.now - asked < .seconds(5) {
            scan()
            if zip(members, before).allSatisfy({ $0.members.count > $1.0 && $0.histories.count > $1.1 }) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        for (instance, counts) in zip(members, before) where instance.members.count <= counts.0 || instance.histories.count <= counts.1 {
            return "\(instance.label) did not answer /who and /history within 5 s"
        }
        let names = Set(members.map(\.name))
        let answers = members.map { $0.members.last! }
        let hosts = Set(answers.compactMap(\.hostName))
        let epochs = Set(answers.compactMap { $0.int("epoch") })
        guard hosts.count == 1, epochs.count == 1 else {
            return "not one host: " + zip(members, answers).map { "\($0.label) sees \($1.hostName ?? "none") (epoch \($1.int("epoch") ?? -1))" }.joined(separator: ", ")
        }
        for (instance, answer) in zip(members, answers) where Set(answer.memberNames) != names {
            return "\(instance.label) sees members \(answer.memberNames.sorted()), live are \(names.sorted())"
        }
        lastHost = hosts.first
        let logs = members.map { $0.histories.last! }
        for (instance, log) in zip(members, logs) {
            if Set(log.map(\.text)).count != log.count { throw SoakViolation("\(instance.label) holds a message twice: \(log)") }
            if zip(log, log.dropFirst()).contains(where: { $0.seq + 1 != $1.seq }) { return "\(instance.label)'s log is not contiguous" }
        }
        let nonEmpty = logs.filter { !$0.isEmpty }
        guard let low = nonEmpty.map({ $0.first!.seq }).max(), let high = nonEmpty.map({ $0.last!.seq }).min() else { return nil }
        if low <= high {
            let reference = zip(members, logs).first { !$1.isEmpty }!
            let expected = reference.1.filter { (low...high).contains($0.seq) }
            for (instance, log) in zip(members, logs) where !log.isEmpty {
                let part = log.filter { (low...high).contains($0.seq) }
                if part != expected {
                    let first = zip(part, expected).first { $0 != $1 }
                    return "\(instance.label) and \(reference.0.label) hold different sequences (\(first.map { "\($0) vs \($1)" } ?? "lengths differ"))"
                }
            }
        }
        return nil
    }

    /// The code still joins: a new peer joins by the code (mDNS, CPace), gets a history without
    /// a message twice, and leaves with /quit (exit 0). Returns how long the join took.
    func probe() async throws -> Duration {
        probes += 1
        let machine = hostNames.randomElement(using: &random)!
        let start = ContinuousClock.now
        let probe = try lan.peer("probe\(probes)", on: machine, ["join", code, "--name", "probe\(probes)", "--json", "--timeout", "30"])
        defer { probe.killNow() }
        do {
            try await probe.waitFor("entered", timeout: .seconds(60)) { $0.type == "entered" }
        } catch {
            throw SoakViolation("the code does not join: probe\(probes) on \(machine)\n\(probe.transcript)")
        }
        let took = ContinuousClock.now - start
        let history = probe.events.filter { $0.type == "message" }.compactMap { $0["text"] }
        guard Set(history).count == history.count else { throw SoakViolation("probe\(probes) got a message twice in its history") }
        probe.send("/quit")
        let status = try await probe.waitForExit(timeout: .seconds(30))
        guard status == 0 else { throw SoakViolation("probe\(probes) left with status \(status)\n\(probe.transcript)") }
        return took
    }

    func record(_ record: FaultRecord) { records.append(record) }

    private func transcripts() -> String {
        instances.filter(\.isLive).map { instance in
            let lines = instance.process.outputLines.suffix(30).joined(separator: "\n")
            return "--- \(instance.label) on \(instance.host), last lines:\n\(lines)\n--- stderr:\n\(instance.process.errorText.suffix(3000))"
        }.joined(separator: "\n")
    }

    // MARK: the report

    struct Totals {
        var sent = 0, confirmed = 0, unconfirmedOfKilled = 0, lost = 0, doubled = 0, late = 0
    }

    /// Lost: a confirmed message that a member who was in the room when it was written and is
    /// still there never showed (counted once per message).
    func totals() -> Totals {
        scan()
        var totals = Totals()
        totals.sent = written.count
        totals.confirmed = confirmedAt.count
        totals.unconfirmedOfKilled = written.filter { confirmedAt[$0.key] == nil && !$0.value.sender.isLive }.count
        let members = live
        totals.lost = confirmedAt.keys.filter { text in
            let at = written[text]!.at
            return members.contains { member in member.entered.map { $0 < at } == true && member.shown[text] == nil }
        }.count
        totals.doubled = doubled.count
        totals.late = instances.reduce(0) { $0 + $1.lateShown }
        return totals
    }

    func report(completed: Bool, failure: String?) -> String {
        let totals = totals()
        var lines: [String] = []
        lines.append("fault soak: seed \(settings.seed), \(settings.peers) peers on \(hostNames.count) machines, a line every \(settings.lineInterval) from each, \(records.count) of \(settings.faults) faults\(completed ? "" : " (stopped early)")")
        lines.append("")
        lines.append("fault    count  settle median  settle max")
        for kind in FaultKind.allCases {
            let times = records.filter { $0.kind == kind }.map(\.settle)
            guard !times.isEmpty else { continue }
            lines.append(kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                         + String(format: "%6d  %11.2f s  %8.2f s", times.count, Soak.median(times), Soak.secondsOf(times.max()!)))
        }
        let all = records.map(\.settle)
        if !all.isEmpty { lines.append(String(format: "all     %6d  %11.2f s  %8.2f s", all.count, Soak.median(all), Soak.secondsOf(all.max()!))) }
        let joins = records.map(\.probeJoin)
        if !joins.isEmpty {
            lines.append("")
            lines.append(String(format: "the code joined after every fault: %d probes, join by code median %.2f s, max %.2f s",
                                joins.count, Soak.median(joins), Soak.secondsOf(joins.max()!)))
        }
        lines.append("")
        lines.append("messages: \(totals.sent) sent, \(totals.confirmed) confirmed, \(totals.unconfirmedOfKilled) never confirmed (their sender was SIGKILLed first), \(totals.lost) lost, \(totals.doubled) doubled")
        lines.append("shown live marked late (sequenced on the other side of a split or by a frozen host): \(totals.late) showings")
        lines.append("joins that had to be retried: \(joinRetries.count)\(joinRetries.isEmpty ? "" : " (" + joinRetries.joined(separator: "; ") + ")")")
        if let failure { lines.append(""); lines.append("VIOLATION: \(failure)") }
        return lines.joined(separator: "\n")
    }

    static func secondsOf(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func median(_ values: [Duration]) -> Double {
        let sorted = values.map(secondsOf).sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
