import Foundation
import HeartbeatCore
import Testing

/// The object tables of docs/API.md, parsed, so that tests can hold real responses to the document.
struct APIDocument: Sendable {
    indirect enum FieldType: Sendable, Equatable, CustomStringConvertible {
        case string, integer, number, boolean
        case object(String)
        case array(FieldType)

        var description: String {
            switch self {
            case .string: "string"
            case .integer: "integer"
            case .number: "number"
            case .boolean: "boolean"
            case .object(let name): name
            case .array(let element): "[\(element)]"
            }
        }
    }

    struct Field: Sendable, Equatable {
        var name: String
        var type: FieldType
        var nullable: Bool
    }

    var objects: [String: [Field]]

    static let path = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // SidecarTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // repository
        .appendingPathComponent("docs/API.md").path

    static let shared: APIDocument = {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            preconditionFailure("cannot read \(path)")
        }
        return parse(text)
    }()

    /// `### \`Name\`` headings followed by a `| Field | Type | Meaning |` table.
    static func parse(_ text: String) -> APIDocument {
        var objects: [String: [Field]] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") {
                current = nil
                if trimmed.hasPrefix("### `"), trimmed.hasSuffix("`") {
                    let name = String(trimmed.dropFirst(5).dropLast())
                    current = name
                    objects[name] = []
                }
                continue
            }
            guard let object = current, trimmed.hasPrefix("| `") else { continue }
            let cells = trimmed.split(separator: "|", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard cells.count >= 4 else { continue }
            let name = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            var typeText = cells[2]
            let nullable = typeText.hasSuffix("?")
            if nullable { typeText.removeLast() }
            objects[object, default: []].append(Field(name: name, type: fieldType(typeText), nullable: nullable))
        }
        return APIDocument(objects: objects)
    }

    static func fieldType(_ text: String) -> FieldType {
        if text.hasPrefix("[") && text.hasSuffix("]") { return .array(fieldType(String(text.dropFirst().dropLast()))) }
        switch text {
        case "string": return .string
        case "integer": return .integer
        case "number": return .number
        case "boolean": return .boolean
        default: return .object(text)
        }
    }

    /// Every way `value` departs from the documented object `name`: missing keys, keys not documented,
    /// values of another type. Empty when it conforms.
    func problems(_ value: JSONValue, as name: String, at path: String = "$") -> [String] {
        guard let fields = objects[name] else { return ["\(path): docs/API.md documents no object \(name)"] }
        guard case .object(let members) = value else { return ["\(path): expected a \(name) object"] }
        var problems: [String] = []
        let documented = Set(fields.map(\.name))
        for key in members.keys.sorted() where !documented.contains(key) {
            problems.append("\(path).\(key): not documented in \(name)")
        }
        for field in fields {
            guard let member = members[field.name] else {
                problems.append("\(path).\(field.name): documented in \(name) but missing")
                continue
            }
            if member == .null {
                if !field.nullable { problems.append("\(path).\(field.name): null, but \(name) says \(field.type)") }
                continue
            }
            problems += self.problems(member, type: field.type, at: "\(path).\(field.name)")
        }
        return problems
    }

    private func problems(_ value: JSONValue, type: FieldType, at path: String) -> [String] {
        switch (type, value) {
        case (.string, .string), (.boolean, .bool): return []
        case (.number, .number): return []
        case (.integer, .number(let text)):
            return Int64(text) != nil || UInt64(text) != nil ? [] : ["\(path): \(text) is not an integer"]
        case (.object(let name), _): return problems(value, as: name, at: path)
        case (.array(let element), .array(let items)):
            return items.enumerated().flatMap { index, item in problems(item, type: element, at: "\(path)[\(index)]") }
        default: return ["\(path): expected \(type), found \(value)"]
        }
    }

    /// Records an issue for every departure.
    func expect(_ value: JSONValue, conformsTo name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let problems = problems(value, as: name)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}
