import ArgumentParser
import Foundation
import Logging

/// `kvmha cloudstack …`: commands that take the place of CloudStack's KVM HA scripts.
struct CloudStackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloudstack",
        abstract: "Drop-in replacements for CloudStack's kvmheartbeat.sh and kvmvmactivity.sh.",
        discussion: """
            Same arguments, same verdict lines, same exit statuses as CloudStack's scripts, so the agent can run \
            them in their place; where the scripts are wrong these are right (docs/cloudstack-drop-in.md). \
            Every storage call has a deadline (--io-timeout, default 3s): a hung pool gives an error, never a hang.
            """,
        subcommands: [CloudStackHeartbeatCommand.self, CloudStackVMActivityCommand.self]
    )

    /// One logger to stderr for the run (the agent keeps the script's output; stdout carries only the verdict).
    static func bootstrapLogging() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
    }

    /// The verdict line (or the script's message) on stdout, flushed before the exit.
    static func printLine(_ line: String) {
        FileHandle.standardOutput.write(Data("\(line)\n".utf8))
    }

    /// A reason on stderr, named after the command.
    static func printReason(_ command: String, _ message: String) {
        FileHandle.standardError.write(Data("kvmha cloudstack \(command): \(message)\n".utf8))
    }

    /// Exit statuses beyond the scripts' own (documented in each command's help).
    enum Status {
        /// No verdict: the pool could not be read (error, timeout, not mounted). The agent counts a failing
        /// script as alive / active, which is right for a checker that cannot see.
        static let noVerdict: Int32 = 69
        /// `-c` could not read the daemon's config.
        static let config: Int32 = 78
    }
}
