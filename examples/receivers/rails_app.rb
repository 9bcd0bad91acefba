# rails_controller.rb served without a Rails app: Action Pack's router and controller on WEBrick.
#
#     ruby examples/receivers/rails_app.rb [PORT]        (default 8000)
#
# Needs Action Pack and WEBrick: `apt install ruby-actionpack ruby-webrick` (Debian/Ubuntu)
# or `gem install actionpack webrick`.  In a Rails app, use the routes below in config/routes.rb.
require "action_controller"
require "rack/handler/webrick"
require_relative "rails_controller"

ROUTES = ActionDispatch::Routing::RouteSet.new
ROUTES.draw do
  %w[multiply divide echo].each { |name| match name => "tasks##{name}", via: %i[get post put patch delete] }
  get "health" => ->(_env) { [200, { "Content-Type" => "application/json" }, ['{"status": "success", "retval": "ok"}']] }
end

port = Integer(ARGV.fetch(0, "8000"))
puts "receiver listening on http://127.0.0.1:#{port}"
$stdout.flush
Rack::Handler::WEBrick.run(ROUTES, Host: "127.0.0.1", Port: port, AccessLog: [], Logger: WEBrick::Log.new(nil, 0))
