import Foundation

/// The outcome of a finished command.
struct CommandOutput: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String
}

struct CommandFailed: Error, CustomStringConvertible {
    let command: [String]
    let output: CommandOutput
    var description: String {
        "\(command.joined(separator: " ")) exited \(output.status): \(output.stderr)\(output.stdout)"
    }
}

/// Runs a command to completion on a thread of its own; throws `CommandFailed` on a non-zero exit.
func run(_ executable: String, _ arguments: [String], deadline: Duration = hangDeadline) async throws -> CommandOutput {
    let command = [executable] + arguments
    let output = try await runOnThread(command.joined(separator: " "), deadline: deadline) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Small outputs only (virsh): reading one pipe to its end cannot block on the other filling up.
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandOutput(
            status: process.terminationStatus,
            stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self)
        )
    }
    guard output.status == 0 else {
        throw CommandFailed(command: command, output: output)
    }
    return output
}

/// `virsh -c URI ARGS...`: a second, independent libvirt client.
func virsh(_ uri: String, _ arguments: String...) async throws -> String {
    try await run("/usr/bin/virsh", ["--quiet", "-c", uri] + arguments).stdout
}

/// `virsh -c URI ARGS...` with the arguments in an array.
func virsh(_ uri: String, _ arguments: [String]) async throws -> String {
    try await run("/usr/bin/virsh", ["--quiet", "-c", uri] + arguments).stdout
}
