# A Rails controller answering the callback protocol (as in Celery's docs).
#
# Route it in config/routes.rb:
#   %w[multiply divide echo].each { |name| match name => "tasks##{name}", via: %i[get post put patch delete] }
# Or run it without a Rails app: ruby examples/receivers/rails_app.rb [PORT]
#
# It takes every shape of call a worker sends: GET with the arguments in the query
# string; POST, PUT, PATCH and DELETE with them in the body, form-encoded or JSON (JSON
# values keep their types).  Arguments are read from the raw query or body rather than
# `params`, which merges the URL's query into a body call (unsigned; docs/protocol.md) and
# keeps only the last value of a repeated form key.  It does not check signatures.
require "json"

class TasksController < ActionController::API
  class BadArguments < StandardError; end

  # A request the protocol does not allow: answered with this HTTP status and a failure body.
  class Refused < StandardError
    attr_reader :status

    def initialize(status, reason)
      super(reason)
      @status = status
    end
  end

  FORM = "application/x-www-form-urlencoded"
  JSON_TYPE = "application/json"

  wrap_parameters false # a JSON body stays as sent, not also nested under "task"

  rescue_from(Refused) { |error| render status: error.status, json: { status: "failure", reason: error.message } }
  rescue_from(BadArguments, ZeroDivisionError) { |error| render json: { status: "failure", reason: error.message } }

  def multiply
    render json: { status: "success", retval: integer(:x) * integer(:y) }
  end

  def divide
    x = integer(:x)
    y = integer(:y)
    raise ZeroDivisionError, "division by zero" if y.zero?

    render json: { status: "success", retval: x.fdiv(y) }
  end

  def echo
    render json: { status: "success", retval: arguments }
  end

  private

  # GET: the query string.  Other methods: the body only, as that is what a signature covers.
  def arguments
    @arguments ||=
      if request.get?
        Rack::Utils.parse_query(request.query_string)
      elsif request.media_type == JSON_TYPE
        parse_json(request.raw_post)
      elsif request.media_type.blank? || request.media_type == FORM
        Rack::Utils.parse_query(request.raw_post) # a repeated key becomes a list
      else
        raise Refused.new(415, "the body must be #{FORM} or #{JSON_TYPE}, not #{request.media_type}")
      end
  end

  def parse_json(body)
    args = JSON.parse(body)
    raise Refused.new(400, "the JSON body must be an object of arguments") unless args.is_a?(Hash)

    args
  rescue JSON::ParserError => e
    raise Refused.new(400, "the body is not JSON: #{e.message}")
  end

  # An integer argument: a JSON integer, or a string of digits (a form or query value).
  def integer(name)
    raise BadArguments, "missing argument: #{name}" unless arguments.key?(name.to_s)

    value = arguments[name.to_s]
    return value if value.is_a?(Integer)
    return Integer(value, 10) if value.is_a?(String) && value.match?(/\A\s*[+-]?\d+\s*\z/)

    raise BadArguments, "#{name} must be an integer, not #{value.to_json}"
  end
end
