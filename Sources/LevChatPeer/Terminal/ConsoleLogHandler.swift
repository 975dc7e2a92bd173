import Logging

/// Log lines go through the console, so they keep their order with everything else printed and,
/// on the interactive screen, appear above the input line instead of through it.
public struct ConsoleLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let console: Console

    public init(label: String, console: Console, level: Logger.Level) {
        self.label = label
        self.console = console
        logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let details = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        console.diagnostic("\(Timestamp.iso8601(Timestamp.nowMillis())) \(event.level) \(label):\(details) \(event.message)")
    }
}
