internal import CLibvirt
import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The few facts the wrapper needs from a pool's XML description (`virStoragePoolGetXMLDesc`).
struct StoragePoolXML: Equatable {
    var type: String
    var sourceHost: String?
    var sourceDir: String?
    var targetPath: String?
}

extension StoragePoolXML {
    /// Parses `<pool type='…'>` with `<source><host name=…/><dir path=…/></source>` and `<target><path>`.
    ///
    /// Uses the streaming `XMLParser`: FoundationXML's `XMLDocument` crashes on input libxml2 cannot turn
    /// into a document (an empty string, for one).
    init(parsing xml: String) throws(LibvirtError) {
        let reader = PoolXMLReader()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = reader
        let parsed = parser.parse()
        let operation = "parse storage pool XML"
        if !parsed || parser.parserError != nil {
            let reason = parser.parserError.map { "\($0)" } ?? "unknown parser error"
            throw .wrapper(VIR_ERR_XML_ERROR, "pool XML is not well-formed: \(reason)", operation: operation)
        }
        guard reader.sawPool else {
            throw .wrapper(VIR_ERR_XML_ERROR, "pool XML has no <pool> root element", operation: operation)
        }
        guard let type = reader.type, !type.isEmpty else {
            throw .wrapper(VIR_ERR_XML_ERROR, "<pool> has no type attribute", operation: operation)
        }
        self.init(
            type: type,
            sourceHost: reader.sourceHost,
            sourceDir: reader.sourceDir,
            targetPath: reader.targetPath?.trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }
}

/// Collects the elements `StoragePoolXML` needs, by their path from the root; ignores everything else.
private final class PoolXMLReader: NSObject, XMLParserDelegate {
    var sawPool = false
    var type: String?
    var sourceHost: String?
    var sourceDir: String?
    var targetPath: String?
    private var path: [String] = []

    func parser(
        _ parser: XMLParser,
        didStartElement elementName: String,
        namespaceURI: String?,
        qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        path.append(elementName)
        switch path {
        case ["pool"]:
            sawPool = true
            type = attributes["type"]
        case ["pool", "source", "host"] where sourceHost == nil:
            sourceHost = attributes["name"]
        case ["pool", "source", "dir"] where sourceDir == nil:
            sourceDir = attributes["path"]
        case ["pool", "target", "path"]:
            targetPath = targetPath ?? ""
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        path.removeLast()
    }

    /// Text may arrive in several pieces (entities split it).
    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if path == ["pool", "target", "path"] {
            targetPath = (targetPath ?? "") + string
        }
    }
}
