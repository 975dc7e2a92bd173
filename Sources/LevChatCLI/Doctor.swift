import ArgumentParser
import LevChatCore
import LevChatPeer
import Logging

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check why a room cannot be seen: avahi-daemon, network interfaces, rooms visible now, firewall.")

    @Option(parsing: .unconditional, help: "Seconds to listen for rooms on the network.")
    var listen: Double = 3

    func validate() throws {
        guard listen > 0 && listen <= 60 else {
            throw ValidationError("--listen takes seconds, more than 0 and at most 60 (3 is the default), not \(Join.seconds(listen))")
        }
    }

    func run() async throws {
        // Its log lines as create's and join's: escaped, and info only when LEVCHAT_LOG asks (the
        // default handler printed "avahi-daemon is not reachable" at info, above the report's own
        // line saying so).
        let console = Console(json: false)
        CommonOptions.bootstrapLogging(console)
        defer { console.finish() }
        let report = await NetworkDoctor.examine(browseFor: .milliseconds(Int64(listen * 1000)), logger: Logger(label: "levchat"))
        var problems = 0
        switch report.daemon {
        case .success(let status):
            say("avahi-daemon: running (\(status.version)), this host is \(status.hostName)")
            say("discovery: through avahi-daemon (rooms made here are advertised by it, and rooms are found through it)")
        case .failure(let error):
            say("avahi-daemon: not available (\(describing: error))")
            say("discovery: levchat's own mDNS on UDP 5353 (rooms made here are advertised by it, and rooms are found")
            say("  through it); starting avahi-daemon (sudo systemctl start avahi-daemon) hands both to it.")
        }
        say("interfaces:")
        for interface in report.interfaces {
            let state = [interface.up ? "up" : "down", interface.multicast ? "multicast" : "no multicast"].joined(separator: ", ")
            let addresses = interface.addresses.isEmpty ? "no address" : interface.addresses.joined(separator: " ")
            say("  \(interface.name): \(state); \(addresses)")
        }
        if report.usableInterfaces.isEmpty {
            problems += 1
            say("  no interface is up with multicast: mDNS cannot reach anyone")
        }
        let plural: ScreenText = report.advertisements == 1 ? "" : "s"
        say("rooms visible now (\(report.advertisements) advertisement\(plural) in \(describing: listen) s):")
        if report.rooms.isEmpty { say("  none") }
        for (room, hosts) in report.rooms.sorted(by: { $0.key < $1.key }) {
            say("  room \(room)…: \(hosts.sorted().joined(separator: "; "))")  // names from the LAN, escaped
        }
        say("firewall: allow UDP 5353 in and out (mDNS, multicast 224.0.0.251 and ff02::fb), and the room's")
        say("  TCP port (printed by 'create'; fix it with --port) on the host and on every member (any member may become host).")
        if problems > 0 { throw ExitCode(69) }
    }

    /// Every line of the report is a `ScreenText`: host and instance names from the LAN are
    /// escaped on the way in.
    private func say(_ text: ScreenText) {
        print(text.rendered)
    }
}
